"""A search iteration's time alone and beside a second busy process, by how OpenMP workers wait.

torch's OpenMP (libgomp) workers spin a long while when they wait for work. On a machine whose
cores are shared with another busy process, the spinning workers and that process fight for the
same cores. nas-llv sets GOMP_SPINCOUNT=10000 (a short spin) before torch loads
(nas_llv/__init__.py) unless the user set it; OMP_WAIT_POLICY=PASSIVE (no spin) is the other
choice measured. Each figure is the median wall time of RUAS cooperative finite-difference search
iterations at 160x160 (batch 1), each setting in a fresh process (OpenMP reads it when it
starts), all in one run of this script.

    python benchmarks/threads.py [--size 160] [--repeats 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time

CHILD = """
import statistics, sys, time
import torch
from nas_llv.recipe import recipe_from_dict
from nas_llv.search.loop import Searcher
size, repeats = int(sys.argv[1]), int(sys.argv[2])
recipe = recipe_from_dict({"name": "bench", "device": "cpu",
    "data": {"type": "demo", "demo_count": 2, "demo_size": size, "crop": size, "batch_size": 1},
    "losses": {"scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
    "search": {"strategy": "cooperative", "hypergrad": {"type": "finite_difference"}}}, "bench")
s = Searcher(recipe)
def iteration():
    for name in s.levels:
        s.levels[name].iterate(s.method, lambda: s._batch(s.train_data), lambda: s._batch(s.val_data))
iteration()
times = []
for _ in range(repeats):
    t = time.perf_counter(); iteration(); times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def _burn(seconds: float) -> None:
    end = time.time() + seconds
    x = 0
    while time.time() < end:
        x += 1


SETTINGS = {  # label -> environment
    "libgomp default (before)": {},
    "GOMP_SPINCOUNT=10000 (nas-llv default)": {"GOMP_SPINCOUNT": "10000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def measure(setting: dict[str, str], busy: bool, args: argparse.Namespace) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update({"OMP_NUM_THREADS": str(args.threads), **setting})
    burner = mp.Process(target=_burn, args=(600.0,)) if busy else None
    if burner is not None:
        burner.start()
    try:
        # the child imports torch before nas_llv, so only the setting given here is in force
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.size), str(args.repeats)], env=env,
                             capture_output=True, text=True, check=True).stdout
    finally:
        if burner is not None:
            burner.terminate()
            burner.join()
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"search iteration, {args.size}x{args.size}, {args.threads} threads, median of {args.repeats}")
    print("| OpenMP workers | alone (s) | beside a busy process (s) | slowdown |")
    print("| --- | --- | --- | --- |")
    for label, setting in SETTINGS.items():
        alone, busy = measure(setting, False, args), measure(setting, True, args)
        print(f"| {label} | {alone:.3f} | {busy:.3f} | {busy / alone:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
