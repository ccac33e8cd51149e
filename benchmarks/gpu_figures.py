"""The search figures of ``benchmarks/gpu_check.sh`` (issue 29): per hypergradient method and path (eager,
deferred: ``speed.sync_every``, ``speed.compile``, ``speed.cuda_graphs``: graphed), seconds per RUAS search iteration, kernel launches per
iteration, the peak memory of an iteration (and on CUDA of the demo recipe's first epoch as it is: what one
sweep trial of each needs), and the projected wall time of ``nas-llv search recipes/ruas_lol.yaml``.

Builds the searcher of ``benchmarks/search_step.py`` (the demo recipe at ``--size`` crops, batch 1: a LOL
trial's iteration) for each path in turn, so the peak memory is that path's alone: ``--warmup`` iterations
(a compiled path compiles in them; their time is reported too), ``--iters`` timed ones (median), then
``--profile`` iterations under ``torch.profiler``. On CUDA the profile counts the kernel-launch calls of
the CUDA runtime and driver (``cudaLaunchKernel``, ``cuLaunchKernel`` for Triton's kernels, ...) and the
kernels the GPU ran; on CPU it counts the ``aten::`` operators called (the same counting, so it is
tested on CPU). The projection multiplies the finite-difference seconds per iteration (the recipe's
hypergradient) by the recipe's iterations: epochs x batches per epoch of its training split (LOL's
485 training pairs where ``data.root`` is absent), leaving out its per-epoch validation. Unless ``--no-train``,
it also times a step of ``nas-llv train`` (``recipes/ruas_demo_train.yaml``) with its figures read every step
against every 50 (``speed.sync_every``).

    python benchmarks/gpu_figures.py [--device cuda] [--size 320] [--iters 3] [--warmup 2] [--profile 1]
        [--methods first_order,finite_difference] [--paths eager,deferred,compiled,graphed] [--rows FILE] [--no-train]

Prints one Markdown table; ``--rows FILE`` also writes its rows (``| figure | value | seconds |``), which
gpu_check.sh appends to its own table.
"""
from __future__ import annotations

import argparse
import gc
import logging
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_step import iteration, make_searcher, sync  # noqa: E402

from nas_llv.data.loaders import split_indices  # noqa: E402
from nas_llv.export.ruas_import import ruas_genotype  # noqa: E402
from nas_llv.recipe import load_recipe  # noqa: E402
from nas_llv.retrain.trainer import Trainer  # noqa: E402
from nas_llv.runs import Run  # noqa: E402
from nas_llv.search.loop import Searcher  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOL_RECIPE, DEMO_RECIPE = REPO / "recipes" / "ruas_lol.yaml", REPO / "recipes" / "ruas_demo.yaml"
TRAIN_RECIPE = REPO / "recipes" / "ruas_demo_train.yaml"
LOL_TRAIN_PAIRS = 485  # our485 (nas_llv.data.folders.LOL_LAYOUT), where the recipe's data.root is absent
# deferred: eager, the host reading the rows every 50 steps (speed.sync_every), so it can queue ahead;
# graphed: compiled in reduce-overhead mode, each compiled forward and backward a CUDA graph (on CPU:
# compiled), with the rows read every 50 steps too
PATHS = {"eager": ["speed.compile=false"], "deferred": ["speed.compile=false", "speed.sync_every=50"],
         "compiled": ["speed.compile=true"],
         "graphed": ["speed.compile=true", "speed.cuda_graphs=true", "speed.sync_every=50"]}
# the host-side calls that launch one kernel each: the runtime API, the driver API (Triton), a CUDA graph
LAUNCH_CALLS = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx",
                "cudaLaunchCooperativeKernel", "cudaGraphLaunch")


def launch_counts(events: Iterable[Any], iterations: int, cuda: bool) -> dict[str, float]:
    """Per iteration, from profiler events (``FunctionEvent``: ``name``, ``device_type``): on CUDA the
    launch calls and the kernels run (device events that are not memory copies or sets); on CPU the
    ``aten::`` operators called (nested ones too)."""
    counts: Counter[str] = Counter()
    for e in events:
        on_device = e.device_type == torch.autograd.DeviceType.CUDA
        if cuda and on_device and not e.name.startswith(("Memcpy", "Memset")):
            counts["kernels"] += 1
        elif cuda and not on_device and e.name in LAUNCH_CALLS:
            counts["launches"] += 1
        elif not cuda and e.name.startswith("aten::"):
            counts["aten ops"] += 1
    return {k: v / iterations for k, v in counts.items()}


def lol_iterations(recipe_path: Path = LOL_RECIPE) -> tuple[int, str]:
    """(iterations of the recipe's search, where its training-set size came from): epochs x batches
    per epoch, as ``Searcher`` counts them (``search.steps_per_epoch``, else one pass over the split)."""
    recipe = load_recipe(recipe_path, [])
    root = (REPO / recipe.data.root) if recipe.data.root else None
    low = root / "our485" / "low" if root else None
    if low is not None and low.is_dir():
        n, source = len([p for p in low.iterdir() if p.is_file()]), f"{low}"
    else:
        n, source = LOL_TRAIN_PAIRS, "LOL's our485 (data.root absent here)"
    train = len(split_indices(n, recipe.data.val_ratio, recipe.seed)[0])
    per_epoch = recipe.search.steps_per_epoch or math.ceil(train / recipe.data.batch_size)
    how = f"{recipe.search.epochs} epochs x {per_epoch} batches; {train} of {n} images train, {source}"
    return recipe.search.epochs * per_epoch, how


def measure(size: int, method: str, device: str, path: list[str], iters: int, warmup: int, profiled: int,
            root: str) -> dict[str, Any]:
    """Seconds of the warm-up, median seconds per timed iteration, launches per iteration, peak memory
    (MiB allocated and reserved; CUDA only) of one searcher, built and dropped here."""
    cuda = torch.device(device).type == "cuda"
    s = make_searcher(size, method, device, path, root)
    try:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        warm = sum(iteration(s, start) for _ in range(warmup))
        times = [iteration(s, start) for _ in range(iters)]
        activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
        with profile(activities=activities) as prof:
            for _ in range(profiled):
                iteration(s, start)
        out = {"warmup_s": warm, "s": statistics.median(times), "took_s": time.perf_counter() - start,
               **launch_counts(prof.events(), profiled, cuda)}
        if cuda:
            out["allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            out["reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        return out
    finally:
        s.close()
        del s
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def train_steps(device: str, steps: int, warmup: int, root: str, overrides: Iterable[str] = ()) -> dict[str, float]:
    """Median seconds per step of ``nas-llv train`` (``recipes/ruas_demo_train.yaml``: the published
    CVPR RUAS architecture, batch 4 of 64x64 crops) with the step's figures read every step (``eager``)
    and every 50 (``deferred``, ``speed.sync_every``), timed alternately, no validation among them."""
    trainers = {}
    for name, extra in (("eager", []), ("deferred", ["speed.sync_every=50"])):
        recipe = load_recipe(TRAIN_RECIPE, [f"device={device}", f"train.steps={10 * (steps + warmup) + 1}",
                                            "train.val_every=100000", "train.checkpoint_every=100000", *extra, *overrides])
        t = Trainer(recipe, ruas_genotype("cvpr", "ruas"))
        t.attach(Run.create(recipe.to_dict(), f"bench-{name}", root))
        trainers[name] = t
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for i in range(warmup + steps):
        for name, t in trainers.items():
            sync(t.device)
            t0 = time.perf_counter()
            for _ in range(10):  # ten steps a sample: a deferred read falls in every sample alike
                t.advance(t0)
            t.flush_rows()
            sync(t.device)
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) / 10)
    for t in trainers.values():
        t.close()
    return {name: statistics.median(v) for name, v in times.items()}


def first_epoch(recipe_path: Path, overrides: list[str], root: str) -> Searcher:
    """A search of the recipe run through its first epoch (its iterations and validation), closed."""
    recipe = load_recipe(recipe_path, overrides)
    s = Searcher(recipe)
    try:
        s.attach(Run.create(recipe.to_dict(), "bench", root))
        start = time.perf_counter()
        while s.epoch == 0:
            s.advance(start)
    finally:
        s.close()
    return s


def demo_memory(device: str, root: str) -> dict[str, float]:
    """Peak CUDA memory (MiB allocated, reserved) of ``recipes/ruas_demo.yaml`` as it is (48x48 crops,
    batch 2) over its first epoch, eager."""
    torch.cuda.reset_peak_memory_stats()
    first_epoch(DEMO_RECIPE, [f"device={device}"], root)
    gc.collect()
    return {"allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "reserved_mib": torch.cuda.max_memory_reserved() / 2**20}


def memory_text(r: dict[str, float]) -> str:
    return f"{r['allocated_mib']:,.0f} MiB allocated, {r['reserved_mib']:,.0f} MiB reserved"


def rows(size: int, results: dict[tuple[str, str], dict[str, Any]], lol: tuple[int, str],
         demo: dict[str, float] | None = None, train: dict[str, float] | None = None) -> list[str]:
    """The Markdown rows: figure, value, seconds the measurement took (``demo``: ``demo_memory``'s;
    ``train``: ``train_steps``')."""
    out = []
    if demo:
        out.append(f"| peak memory, ruas_demo.yaml as it is (48² crops, batch 2), eager | {memory_text(demo)} | - |")
    if train:
        out.append(f"| s/step, train ruas_demo_train.yaml (64² batch 4), eager / deferred (sync_every 50) | "
                   f"{train['eager']:.4f} / {train['deferred']:.4f} | - |")
    for (method, path), r in results.items():
        what = f"{method}, {path}, {size}² batch 1"
        out.append(f"| s/iteration, {what} | {r['s']:.3f} (warm-up {r['warmup_s']:.1f} s) | {r['took_s']:.1f} |")
        counted = ", ".join(f"{v:,.0f} {k}" for k, v in r.items() if k in ("launches", "kernels", "aten ops"))
        out.append(f"| per iteration, {what} | {counted or 'none counted'} | - |")
        if "allocated_mib" in r:
            out.append(f"| peak memory, {what} | {memory_text(r)} | - |")
    iterations, how = lol
    for (method, path), r in results.items():
        if method == "finite_difference":
            out.append(f"| projected ruas_lol.yaml search, {path} | {iterations * r['s'] / 60:.1f} min "
                       f"({iterations:,} iterations: {how}; x {r['s']:.3f} s) | - |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--profile", type=int, default=1, help="iterations under the profiler")
    ap.add_argument("--methods", default="first_order,finite_difference")
    ap.add_argument("--paths", default="eager,deferred,compiled,graphed", help=f"of {', '.join(PATHS)}")
    ap.add_argument("--rows", type=Path, help="also write the table's rows to this file")
    ap.add_argument("--no-train", dest="train", action="store_false",
                    help="leave out the training step's seconds, eager against deferred")
    args = ap.parse_args()
    logging.getLogger("nas_llv").setLevel(logging.WARNING)
    results: dict[tuple[str, str], dict[str, Any]] = {}
    lol = lol_iterations()
    with tempfile.TemporaryDirectory() as root:
        demo = demo_memory(args.device, root) if torch.device(args.device).type == "cuda" else None
        train = train_steps(args.device, args.iters, args.warmup, root) if args.train else None
        for path in args.paths.split(","):  # every eager figure first: a stopped run keeps them
            for method in args.methods.split(","):
                results[method, path] = measure(args.size, method, args.device, PATHS[path], args.iters,
                                                args.warmup, args.profile, root)
                if args.rows:  # rewritten after each measurement, for the same reason
                    args.rows.write_text("\n".join(rows(args.size, results, lol, demo, train)) + "\n")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__}, {name}, median of {args.iters} after {args.warmup} warm-up, "
          f"{args.profile} profiled\n\n| figure | value | seconds |\n| --- | --- | --- |")
    print("\n".join(rows(args.size, results, lol, demo, train)))


if __name__ == "__main__":
    main()
