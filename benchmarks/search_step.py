"""Seconds per RUAS cooperative search step on 320x320 crops (batch 1), as RUAS searches.

Prints, for each hypergradient method and with/without the fused mixed edge, the median
time of a scene step (3 channels: arch + weight update), a task step (6 channels) and a whole
cooperative iteration (one of each). Compare ratios within one run on one machine.

    python benchmarks/search_step.py [--size 320] [--repeats 5] [--device auto]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from nas_llv.recipe import recipe_from_dict
from nas_llv.search.loop import Searcher


def make_searcher(size: int, fuse: bool, method: str, device: str) -> Searcher:
    recipe = recipe_from_dict({
        "name": "bench", "device": device,
        "network": {"type": "ruas", "fuse": fuse},
        "data": {"type": "demo", "demo_count": 2, "demo_size": size, "crop": size, "batch_size": 1},
        "losses": {"scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
        "search": {"strategy": "cooperative", "hypergrad": {"type": method}},
    }, "bench")
    return Searcher(recipe)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_level(s: Searcher, name: str, repeats: int) -> float:
    level = s.levels[name]
    times = []
    for i in range(repeats + 1):
        train_b, val_b = s._batch(s.train_data), s._batch(s.val_data)
        sync(s.device)
        t0 = time.perf_counter()
        level.arch_step(s.method, train_b, val_b)
        level.weight_step(train_b)
        sync(s.device)
        if i:  # the first is warm-up
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--methods", default="first_order,finite_difference")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {args.size}x{args.size}")
    print(f"{'method':18s} {'fused':>5s} {'scene (3ch) s':>14s} {'task (6ch) s':>13s} {'iteration s':>12s}")
    rows = {}
    for method in args.methods.split(","):
        for fuse in (True, False):
            s = make_searcher(args.size, fuse, method, args.device)
            scene, task = time_level(s, "scene", args.repeats), time_level(s, "task", args.repeats)
            rows[(method, fuse)] = scene + task
            print(f"{method:18s} {str(fuse):>5s} {scene:14.3f} {task:13.3f} {scene + task:12.3f}")
    print(f"device: {s.device} ({torch.cuda.get_device_name(s.device) if s.device.type == 'cuda' else 'cpu'})")
    for method in args.methods.split(","):
        print(f"{method}: fused mixed edges are {rows[(method, False)] / rows[(method, True)]:.2f}x faster")


if __name__ == "__main__":
    main()
