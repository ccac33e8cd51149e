"""Where a RUAS search iteration's time goes: torch.profiler over ``Searcher.advance``.

Builds the searcher of ``benchmarks/search_step.py`` (the demo recipe at 320x320 crops, batch 1),
runs warm-up iterations, then profiles ``--iters`` iterations with labelled ranges: the data
draws, each level's arch step (split into the hypergradient's phases: the unrolled step, the upper
loss at ω', the finite-difference ± perturbations), its weight step and optimizer, the logging
forward, and the forward of each module. Each range's time is split into forward and backward
(autograd) operator time; what no operator accounts for is Python and dispatch overhead. It also
counts the computing operators of an iteration (``compute_ops``), about the kernel launches a GPU runs.

    python benchmarks/profile_search.py [--method finite_difference] [--yardstick] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_step import YARDSTICK, make_searcher  # noqa: E402

from nas_llv.search import level as level_mod  # noqa: E402
from nas_llv.search.loop import Searcher  # noqa: E402

PHASES = ("data", "arch_step", "weight_step", "optimizer", "log_forward", "trajectory")


def labelled(name: Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with record_function(name(*args)):
            return fn(*args, **kwargs)
    return wrapper


@contextlib.contextmanager
def instrumented(s: Searcher) -> Iterator[None]:
    """Label the loop's phases (patched in for the profile, restored after)."""
    Level = level_mod.Level
    saved = {"_batch": Searcher._batch, "arch_step": Level.arch_step, "weight_step": Level.weight_step,
             "val_loss": Level.val_loss, "append": type(s.attached_run.trajectory_writer).append}
    Searcher._batch = labelled(lambda *a: "data", Searcher._batch)
    Level.arch_step = labelled(lambda lv, *a: f"{lv.name}.arch_step", Level.arch_step)
    Level.weight_step = labelled(lambda lv, *a: f"{lv.name}.weight_step", Level.weight_step)
    Level.val_loss = labelled(lambda lv, *a: f"{lv.name}.log_forward", Level.val_loss)
    type(s.attached_run.trajectory_writer).append = labelled(lambda *a: "trajectory", saved["append"])
    opt_step = {}
    for lv in s.levels.values():
        for opt in (lv.weight_opt, lv.arch_opt):
            if opt is not None:
                opt_step[opt] = opt.step
                opt.step = labelled(lambda *a, n=lv.name: f"{n}.optimizer", opt.step)
    hooks = []
    for name in ("scene", "denoise"):
        module = getattr(s.net, name, None)
        if module is None:
            continue
        ctx: list[Any] = []
        hooks.append(module.register_forward_pre_hook(
            lambda m, a, n=name, c=ctx: c.append(record_function(f"{n}.forward").__enter__())))
        hooks.append(module.register_forward_hook(lambda m, a, o, c=ctx: c.pop().__exit__(None, None, None)))
    try:
        yield
    finally:
        Searcher._batch = saved["_batch"]
        Level.arch_step, Level.weight_step, Level.val_loss = saved["arch_step"], saved["weight_step"], saved["val_loss"]
        type(s.attached_run.trajectory_writer).append = saved["append"]
        for opt, step in opt_step.items():
            opt.step = step
        for h in hooks:
            h.remove()


def is_backward(name: str) -> bool:
    return "Backward" in name or name.startswith("autograd::engine")


def is_label(name: str) -> bool:
    return not name.startswith(("aten::", "autograd::", "torch::", "profiler::", "detach")) and "Backward" not in name


# operators that compute nothing (views, metadata, allocation): not counted by ``compute_ops``
NO_COMPUTE = {"aten::" + n for n in (
    "as_strided", "view", "select", "slice", "unsqueeze", "expand", "permute", "transpose", "reshape", "alias",
    "detach", "detach_", "empty", "empty_strided", "empty_like", "t", "unbind", "split", "split_with_sizes", "narrow",
    "squeeze", "resize_", "lift_fresh", "_reshape_alias", "_unsafe_view", "set_", "result_type", "is_nonzero", "item",
    "_local_scalar_dense", "contiguous", "to", "view_as", "expand_as", "flatten")}


def compute_ops(events: Any) -> int:
    """Operators that compute (not views or allocations) and call no other such operator: on a GPU
    each is about one kernel launch, so this CPU count is a proxy for the launches of an iteration.
    A foreach operator counts once: on CPU it loops over its tensors, on CUDA it is one launch per
    few dozen of them."""
    def computes(ev: Any) -> bool:
        return ev.name.startswith("aten::") and ev.name not in NO_COMPUTE

    def in_foreach(ev: Any) -> bool:
        ev = ev.cpu_parent
        while ev is not None:
            if ev.name.startswith("aten::_foreach"):
                return True
            ev = ev.cpu_parent
        return False
    return sum(1 for ev in events if computes(ev) and not in_foreach(ev)
               and (ev.name.startswith("aten::_foreach") or not any(computes(c) for c in ev.cpu_children)))


def breakdown(events: Any) -> tuple[dict[str, dict[str, float]], float]:
    """"phase | module" -> {forward, backward, overhead} ms: each operator counted under the
    innermost phase label and the module whose forward ran it (backward operators, run by autograd
    outside any module's forward, under the phase alone); and the operators' self time in all."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    total_ops = 0.0

    def walk(ev: Any, phase: str, module: str, backward: bool = False) -> None:
        nonlocal total_ops
        name = ev.name
        backward = backward or is_backward(name)
        if is_label(name):
            if name.endswith(".forward"):
                module = name[:-len(".forward")]
            else:
                phase = name
            # the label's own time not spent in any child operator: Python between the ops
            child = sum(c.cpu_time_total for c in ev.cpu_children)
            out[f"{phase} | {module}"]["overhead"] += (ev.cpu_time_total - child) / 1e3
        else:
            out[f"{phase} | {module}"]["backward" if backward else "forward"] += ev.self_cpu_time_total / 1e3
            total_ops += ev.self_cpu_time_total / 1e3
        for c in ev.cpu_children:
            walk(c, phase, module, backward)

    for ev in events:
        if ev.cpu_parent is None:
            walk(ev, "iteration", "-")
    return out, total_ops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--method", default="finite_difference")
    ap.add_argument("--yardstick", action="store_true", help="profile network.merge_edges: false with every speed option off")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--top", type=int, default=15, help="operators to list by self time")
    args = ap.parse_args()
    logging.getLogger("nas_llv").setLevel(logging.WARNING)
    overrides = YARDSTICK if args.yardstick else args.overrides
    with tempfile.TemporaryDirectory() as root:
        s = make_searcher(args.size, args.method, args.device, overrides, root)
        start = time.perf_counter()
        for _ in range(args.warmup):
            s.advance(start)
        with instrumented(s), profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(args.iters):
                with record_function("iteration"):
                    s.advance(start)
            wall = (time.perf_counter() - t0) * 1e3 / args.iters
        s.close()
    table, ops = breakdown(prof.events())
    n = args.iters
    print(f"{args.method}, {'yardstick (unmerged, options off)' if args.yardstick else 'default'} "
          f"{overrides or ''}, {args.size}x{args.size}, threads {torch.get_num_threads()}: "
          f"{wall:.0f} ms per iteration (wall, under the profiler), operators {ops / n:.0f} ms, "
          f"{compute_ops(prof.events()) / n:.0f} computing operators (about the GPU launches)")
    print(f"{'phase | module':44s} {'forward ms':>11s} {'backward ms':>12s} {'python ms':>10s} {'share':>6s}")
    for label, row in sorted(table.items(), key=lambda kv: -sum(kv[1].values())):
        tot = sum(row.values()) / n
        print(f"{label:44s} {row['forward'] / n:11.1f} {row['backward'] / n:12.1f} {row['overhead'] / n:10.1f} "
              f"{tot / wall:6.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
