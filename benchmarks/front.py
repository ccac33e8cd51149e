"""The PSNR-vs-FLOPs front of the cost-aware search against random search at equal compute (issue
26, item 5).

Protocol (docs/quality.md, "The front against random"):

1. Two methods, each run at every target T of ``--targets`` (GFLOPs at 600x400) and every seed
   (the seed is the search's, its data's and its retraining's, so the methods are paired by seed):
   ``search``, strategies.py's arm ``cost_<T>`` (cooperative search, hinge above T); ``random``,
   its arm ``limit_<T>`` (random search drawing uniformly among the genotypes costing at most T,
   at the search's forward-backward passes, docs/random.md). The demo protocol of strategies.py:
   its recipes, data, search budget and 120-step retraining, through its runners.
2. Each genotype retrained is scored on validation pairs from photographs no recipe trains on
   (``--val-sources``, sklearn and sporco; synthesis seed 1, the retraining's exposures 1/8-1/2 and
   noise), never on the MIT pairs. Its point: (its FLOPs at 600x400, from the genotype's cost
   meta, its validation PSNR).
3. Per seed, each method's hypervolume (``nas_llv.metrics.pareto``: FLOPs minimised, PSNR
   maximised) against one fixed reference point: the dearest genotype of the space (from the
   cost table) and the dark inputs' own PSNR on the validation pairs. Then strategies.py's paired
   t-test and exact sign-flip test of the per-seed hypervolumes, search against random.
   ``--psnr-floor`` moves the reference's PSNR (a sensitivity check, docs/quality.md).

Rows go to ``WORK/results.jsonl`` (strategies.py's format); a rerun with the same ``--work``
resumes.

    python benchmarks/front.py [--seeds 0-4] [--targets 1,2,3] [--jobs 2] [--work DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]
from quality_protocol import write_pairs  # noqa: E402 (the validation sets of the other benchmarks)
from strategies import PROTOCOLS, paired_tests, parse_seeds, pm, run_all  # noqa: E402 (its runners)

from nas_llv.metrics.pareto import hypervolume  # noqa: E402

METHODS = {"search": "cost", "random": "limit"}  # method -> strategies.py's arm prefix


def runner_args(args: argparse.Namespace, val: Path) -> argparse.Namespace:
    """What strategies.py's runners read: its demo protocol, arms cost_<T> and limit_<T>, and the
    validation pairs in place of the MIT ones."""
    demo = PROTOCOLS["demo"]
    return argparse.Namespace(protocol="demo", p=demo, arms=",".join(METHODS.values()), cost_targets=args.targets,
                              seeds=args.seeds, epochs=args.epochs, steps_per_epoch=demo["steps_per_epoch"],
                              candidates=args.candidates, train_steps=demo["train_steps"], random_genotypes=0,
                              cost_limit=None, set=[], jobs=args.jobs, mit=val)


def genotype_gflops(run: str) -> float:
    """The searched genotype's GFLOPs at 600x400: its ``meta.cost`` (= the derived network's count)."""
    import yaml

    cost = yaml.safe_load(Path(run, "genotype.yaml").read_text())["meta"]["cost"]
    if cost["unit"] != "GFLOPs" or cost["size"] != "600x400":
        raise ValueError(f"{run}: genotype cost in {cost['unit']} at {cost['size']}, expected GFLOPs at 600x400")
    return float(cost["value"])


def cost_range(run: str) -> tuple[float, float]:
    """(cheapest, dearest) genotype of the space in GFLOPs at 600x400, from a run's ``cost_table.csv``."""
    by_label: dict[str, list[float]] = {}
    with open(Path(run, "cost_table.csv"), newline="") as f:
        for row in csv.DictReader(f):
            by_label.setdefault(row["label"], []).append(float(row["cost_GFLOPs"]))
    fixed = by_label.pop("(fixed)")[0]
    return fixed + sum(map(min, by_label.values())), fixed + sum(map(max, by_label.values()))


def input_psnr(val: Path) -> float:
    """Mean PSNR of the dark inputs against their targets (dB), as ``nas-llv eval`` averages."""
    from nas_llv.data.io import read_image
    from nas_llv.metrics import psnr

    highs = sorted((val / "high").iterdir())
    return statistics.fmean(float(psnr(read_image(val / "low" / h.name)[None].double(),
                                       read_image(h)[None].double())[0]) for h in highs)


def report(rows: list[dict], args: argparse.Namespace, val: Path) -> list[str]:
    targets = [f"{float(t):g}" for t in args.targets.split(",")]
    by = {(r["arm"], r["seed"]): r for r in rows}
    seeds = sorted(s for s in parse_seeds(args.seeds)
                   if all((f"{p}_{t}", s) in by for p in METHODS.values() for t in targets))
    if not seeds:
        return ["no seed has every arm yet"]
    cheapest, dearest = cost_range(by[(f"cost_{targets[0]}", seeds[0])]["run"])
    reference = (dearest, input_psnr(val) if args.psnr_floor is None else args.psnr_floor)
    floor = f"the dark inputs' PSNR on {val}" if args.psnr_floor is None else "--psnr-floor"
    point = {k: (genotype_gflops(r["run"]), r["psnr"]) for k, r in by.items()}
    hv = {m: [hypervolume([point[(f"{p}_{t}", s)] for t in targets], reference) for s in seeds]
          for m, p in METHODS.items()}
    lines = [f"seeds {seeds}; space: cheapest genotype {cheapest:.3f}, dearest {dearest:.3f} GFLOPs at 600x400; "
             f"reference point ({reference[0]:.3f} GFLOPs, {reference[1]:.2f} dB: {floor})", "",
             "| method | target / limit (GFLOPs at 600x400) | GFLOPs at 600x400 | validation PSNR (dB) | SSIM | "
             "points per seed (GFLOPs, dB) |", "| --- | --- | --- | --- | --- | --- |"]
    for m, p in METHODS.items():
        for t in targets:
            rs = [by[(f"{p}_{t}", s)] for s in seeds]
            pts = "; ".join(f"{point[(f'{p}_{t}', s)][0]:.3f}, {point[(f'{p}_{t}', s)][1]:.2f}" for s in seeds)
            lines.append(f"| {m} | {t} | {pm([point[(f'{p}_{t}', s)][0] for s in seeds], 3)} | "
                         f"{pm([r['psnr'] for r in rs], 2)} | {pm([r['ssim'] for r in rs], 3)} | {pts} |")
    diff, p_t, p_perm = paired_tests(hv["search"], hv["random"])
    lines += ["", "| method | hypervolume (GFLOPs x dB), mean ± std | per seed |", "| --- | --- | --- |"]
    lines += [f"| {m} | {pm(v, 3)} | {' / '.join(f'{x:.3f}' for x in v)} |" for m, v in hv.items()]
    lines += ["", f"search - random, paired over {len(seeds)} seeds: {diff:+.3f} GFLOPs x dB, t-test p = {p_t:.3f}, "
              f"sign-flip p = {p_perm:.3f}; search ahead at {sum(a > b for a, b in zip(hv['search'], hv['random']))} "
              f"of {len(seeds)} seeds"]
    for t in targets:
        d, pt, pp = paired_tests(*([by[(f"{p}_{t}", s)]["psnr"] for s in seeds] for p in METHODS.values()))
        lines.append(f"at {t}: PSNR search - random {d:+.2f} dB, t-test p = {pt:.3f}, sign-flip p = {pp:.3f}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0-4", help="a range or a list (default 0-4)")
    p.add_argument("--targets", default="1,2,3", help="GFLOPs at 600x400: the hinges' targets and random's limits")
    p.add_argument("--epochs", type=int, default=8, help="search epochs (strategies.py's demo budget)")
    p.add_argument("--candidates", type=int, default=8, help="random search's candidates at equal passes")
    p.add_argument("--val-sources", nargs="+", default=["sklearn", "sporco"],
                   help="photo sets for validation (never in the recipes' 'bundled'; docs/data.md)")
    p.add_argument("--val-count", type=int, default=32)
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path, help="folder for the runs and results.jsonl (default: a temporary one)")
    p.add_argument("--psnr-floor", type=float, help="the reference point's PSNR (default: the dark inputs' own)")
    p.add_argument("--report-only", action="store_true", help="print the tables of --work's results")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="front-"))
    work.mkdir(parents=True, exist_ok=True)
    # the demo retraining's exposures and noise, from photographs the recipes never train on
    val = write_pairs(work / "val", args.val_count, args.val_size, sources=tuple(args.val_sources),
                      exposure_min=0.125, exposure_max=0.5)
    results = work / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    if not args.report_only:
        rows += run_all(runner_args(args, val), work, results, {(r["arm"], r["seed"]) for r in rows})
    print("\n".join(report(rows, args, val)))


if __name__ == "__main__":
    main()
