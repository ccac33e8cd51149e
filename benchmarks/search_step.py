"""Seconds per RUAS search iteration as ``nas-llv search`` runs it, unmerged (yardstick) vs default.

Drives the real ``Searcher`` (nas_llv/search/loop.py) on ``recipes/ruas_demo.yaml`` at 320x320
crops, batch 1: each timed iteration is what the CLI does per iteration (draw the batches, the
scene level's arch and weight steps, the task level's, the checks and the trajectory rows). The
yardstick is ``network.merge_edges: false`` with every ``speed`` option off (the code the public RUAS
loop was measured against, issue 11: the public loop took 1.43x its time); the other path is the
default recipe. Both searchers are built first, then timed alternately A B A B.

    python benchmarks/search_step.py [--size 320] [--iters 8] [--warmup 2] [--device cpu]
        [--methods first_order,finite_difference] [--set KEY=VALUE ...] [--variant "KEY=VALUE;KEY=VALUE"]

A variant may also name a lever of the default path to switch off (``LEVERS_OFF``, ``SEARCHER_LEVERS_OFF``,
``SWITCHES``): ``separate_edges``, ``concat_fuse``, ``dense_kernels``, ``max_pool``, ``edge_kernels``,
``loop_steps``, ``band_grads``; e.g. ``--variant separate_edges``.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nas_llv.recipe import load_recipe
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.space import bandconv
from nas_llv.space.models.ruas import SceneModule
from nas_llv.space.supernet import Cell, kernels_by_dilation, set_all

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ruas_demo.yaml"
PUBLIC_OVER_UNMERGED = 1.43  # issue 11: the public RUAS iteration / nas-llv's unmerged iteration, side by side
# not recipe keys: levers measured by switching them off in a variant
LEVERS_OFF = {
    "dense_kernels": lambda net: kernels_by_dilation(net, False),  # one dense kernel even in channels-last
    "separate_edges": lambda net: set_all(net, Cell, join=False),  # each mixed edge its own convolutions
    "concat_fuse": lambda net: set_all(net, Cell, split_concat=False),  # concatenation + one 1x1 convolution
    "max_pool": lambda net: set_all(net, SceneModule, pool=max_pool),  # torch's max-pool kernel for the local max
    "edge_kernels": lambda net: set_all(net, Cell, stack=False),  # each mixed edge builds its own kernels
}
# levers of the searcher itself
SEARCHER_LEVERS_OFF = {"loop_steps": lambda s: foreach_off(s)}  # torch's CPU default: a loop over the weights


def foreach_off(s: Searcher) -> None:
    """Every optimizer of ``s`` steps its weights one by one again (``speed.foreach_steps`` undone)."""
    for level in s.levels.values():
        for opt in (o for o in (level.weight_opt, level.arch_opt) if o is not None):
            for part in opt.parts.values() if hasattr(opt, "parts") else [opt]:
                for group in part.param_groups:
                    group["foreach"] = False


# levers that are module switches, set for each path around each of its timed iterations
SWITCHES = {"band_grads": (bandconv, "ENABLED")}  # torch's own one-thread weight gradients at batch 1


def max_pool(x: torch.Tensor, window: int = 2) -> torch.Tensor:
    """RUAS's local max by torch's max-pool kernel (what ``ruas.local_max`` computed before)."""
    return F.max_pool2d(F.pad(x, (0, window - 1, 0, window - 1)), window, stride=1)


YARDSTICK = ["network.merge_edges=false", "speed.shortcuts=false", "speed.amp=null",
             "speed.channels_last=false", "speed.compile=false"]


def make_searcher(size: int, method: str, device: str, overrides: list[str], root: str) -> Searcher:
    """A Searcher on the demo recipe at ``size`` crops, batch 1, attached to a run folder under ``root``.
    The epoch is made long enough that no end-of-epoch validation falls among the timed iterations."""
    recipe = load_recipe(RECIPE, [
        f"device={device}", f"data.demo_size={size + 32}", f"data.crop={size}", "data.batch_size=1",
        "data.demo_count=4", f"search.hypergrad={{type: {method}}}", "search.steps_per_epoch=1000",
        "search.checkpoint_every=100000",
        *(o for o in overrides if o not in {*LEVERS_OFF, *SEARCHER_LEVERS_OFF, *SWITCHES})])
    s = Searcher(recipe)
    for lever in set(overrides) & set(LEVERS_OFF):
        LEVERS_OFF[lever](s.net)
    for lever in set(overrides) & set(SEARCHER_LEVERS_OFF):
        SEARCHER_LEVERS_OFF[lever](s)
    s.attach(Run.create(recipe.to_dict(), "bench", root))
    return s


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def iteration(s: Searcher, start: float) -> float:
    """Seconds of one ``Searcher.advance`` (one iteration of the schedule)."""
    sync(s.device)
    t0 = time.perf_counter()
    s.advance(start)
    sync(s.device)
    return time.perf_counter() - t0


def compare(size: int, method: str, device: str, paths: list[list[str]], iters: int, warmup: int, root: str
            ) -> list[float]:
    """Median seconds per iteration of each path (overrides), timed alternately A B C A B C ...
    after ``warmup`` iterations each."""
    searchers = [make_searcher(size, method, device, p, root) for p in paths]
    start = time.perf_counter()
    times: list[list[float]] = [[] for _ in paths]
    try:
        for i in range(warmup + iters):
            for k, s in enumerate(searchers):
                for name, (module, attr) in SWITCHES.items():
                    setattr(module, attr, name not in paths[k])
                t = iteration(s, start)
                if i >= warmup:
                    times[k].append(t)
    finally:
        for s in searchers:
            s.close()
        for module, attr in SWITCHES.values():
            setattr(module, attr, True)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--iters", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default="first_order,finite_difference")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="a KEY=VALUE override of the timed default path, e.g. speed.channels_last=true")
    ap.add_argument("--variant", action="append", default=[],
                    help="one more path to time in the same alternation: KEY=VALUE overrides joined by ';'")
    args = ap.parse_args()
    logging.getLogger("nas_llv").setLevel(logging.WARNING)
    variants = [[o for o in v.split(";") if o] for v in args.variant]
    paths = [YARDSTICK, args.overrides, *variants]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {args.size}x{args.size} crops, batch 1, "
          f"device {args.device}, median of {args.iters} after {args.warmup} warm-up, alternating")
    print(f"default path overrides: {args.overrides or 'none'}")
    for k, v in enumerate(variants, 1):
        print(f"variant {k}: {v}")
    head = f"{'method':18s} {'unmerged s':>10s} {'default s':>10s} {'unmerged/default':>16s} {'x public':>9s}"
    print(head + "".join(f" {'v%d ratio' % k:>9s}" for k in range(1, len(variants) + 1)))
    with tempfile.TemporaryDirectory() as root:
        for method in args.methods.split(","):
            slow, fast, *others = compare(args.size, method, args.device, paths, args.iters, args.warmup, root)
            ratio = slow / fast
            print(f"{method:18s} {slow:10.3f} {fast:10.3f} {ratio:16.2f} {1 / (PUBLIC_OVER_UNMERGED * ratio):9.3f}"
                  + "".join(f" {slow / t:9.2f}" for t in others), flush=True)
    print("x public: the implied fraction of the public RUAS code's iteration time, 1 / (1.43 x unmerged/default);"
          " vN ratio: unmerged / variant N")


if __name__ == "__main__":
    main()
