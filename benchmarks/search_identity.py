"""Are a checkout's searches bit-identical to another's? The shipped demo recipes at a fixed seed,
tiny, plain and with each search extension switched on (the collapse remedies, FairDARTS, the cost
term, random search under a cost limit), written by one checkout and compared with another's.

Write the reference with the old code first, then compare with the new one (the checkout that
comes first on PYTHONPATH is the one that runs)::

    PYTHONPATH=../old python benchmarks/search_identity.py --write /tmp/ref
    python benchmarks/search_identity.py --compare /tmp/ref

Compared byte for byte: every run's ``trajectory.csv`` without its ``seconds`` column (wall time),
its ``genotype.yaml`` and ``genotype_best.yaml`` without ``meta.run`` (the folder's time-stamped
name), and ``cost_table.csv``, ``candidates.csv`` and ``hyper.yaml`` where the run has them. Prints
one line per run and exits 1 on any difference; a trajectory with the same cells under the same
columns in another order is reported as such and not counted.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import tempfile
from pathlib import Path

TINY = ["device=cpu", "search.epochs=4", "search.steps_per_epoch=2", "search.val_batches=1",
        "search.checkpoint_every=1000"]
RUAS = "recipes/ruas_demo.yaml"
# name -> (recipe, overrides beyond TINY)
CASES: dict[str, tuple[str, list[str]]] = {
    "plain": (RUAS, []),
    "hessian": (RUAS, ["search.hessian={every: 2}"]),
    "hessian_es": (RUAS, ["search.hessian={every: 1, early_stop: {window: 1, ratio: 1.0}}"]),
    "perturb": (RUAS, ["search.perturb={epsilon: 0.03}"]),
    "aux_skip": (RUAS, ["search.aux_skip={weight: 1.0}"]),
    "fair": (RUAS, ["search.relaxation=sigmoid", "search.zero_one=10"]),
    "cost": (RUAS, ["search.cost={target: 1.5}", "search.max_skip=1"]),
    "cost_tracked": (RUAS, ["search.cost={type: flops}"]),
    "random_limit": (RUAS, ["search.strategy=random", "search.cost={limit: 3.0}"]),
    "all": (RUAS, ["search.hessian={every: 2}", "search.perturb={epsilon: 0.03}", "search.aux_skip={weight: 0.5}",
                   "search.relaxation=sigmoid", "search.zero_one=10", "search.cost={target: 1.5}"]),
    "llsr": ("recipes/llsr_demo.yaml", ["search.epochs=3", "search.s2_epochs=1", "search.cost={target: 0.5}"]),
    # the other shipped search recipes, tiny: the quality pair's cost hinge, strategies of their own
    "quality": ("recipes/ruas_quality.yaml", ["data.synth_count=8"]),
    "highlevel": ("recipes/ruas_highlevel_demo.yaml", []),
    "collaba": ("recipes/collaba_demo.yaml", ["search.epochs=2", "search.steps_per_epoch=2"]),
}
FILES = ("trajectory.csv", "genotype.yaml", "genotype_best.yaml", "cost_table.csv", "candidates.csv", "hyper.yaml")
# stopped after STOP steps by the checkout that writes the reference (its folder kept as ``stopped/``),
# then resumed: by that checkout for the reference, by the compared one from the reference's folder,
# so the compared checkout reads a checkpoint the other wrote
RESUMED = "all"
STOP = 5


def canonical(name: str, text: str) -> str:
    """``text`` of file ``name`` without what differs between identical runs (wall time, folder name);
    ``canonical`` of its own result is that result."""
    if name == "trajectory.csv":
        rows = list(csv.reader(io.StringIO(text)))
        keep = [i for i, col in enumerate(rows[0]) if col != "seconds"]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([[r[i] for i in keep if i < len(r)] for r in rows])
        return out.getvalue()
    if name.startswith("genotype"):
        return re.sub(r"\brun: [\w.-]+-\d{8}-\d{6}\b", "run: RUN", text)  # meta.run, block or flow style
    return text


def keep(run_dir: Path, out: Path) -> None:
    """The canonical files of ``run_dir`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (run_dir / name).exists():
            (out / name).write_text(canonical(name, (run_dir / name).read_text()))


def run_all(out: Path, stopped: Path | None = None) -> None:
    """Run every case into ``out/<case>/`` (the canonical files only), and case ``RESUMED`` stopped
    and resumed into ``out/resumed/``: from ``stopped`` (a run folder) where given, else stopped
    here first (its folder kept as ``out/stopped/``)."""
    import shutil

    import torch

    from nas_llv import pipeline

    torch.set_num_threads(1)
    for case, (recipe, extra) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            keep(pipeline.search(recipe, [*TINY, *extra], output=tmp).dir, out / case)
        print(f"{case}: written", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if stopped is None:
            recipe, extra = CASES[RESUMED]
            first = pipeline.search(recipe, [*TINY, *extra], output=tmp, stop_after=STOP).dir
            shutil.copytree(first, out / "stopped")
        shutil.copytree(stopped or out / "stopped", Path(tmp) / "run")
        keep(pipeline.resume(Path(tmp) / "run").dir, out / "resumed")
    print("resumed: written", flush=True)


def same_columns(a: str, b: str) -> bool:
    """Two CSV texts with the same columns, in some order, and the same text in every cell."""
    rows_a, rows_b = (list(csv.DictReader(io.StringIO(t))) for t in (a, b))
    return sorted(rows_a[0]) == sorted(rows_b[0]) and rows_a == rows_b if rows_a and rows_b else a == b


def verdict(ref: Path, new: Path) -> str:
    """How file ``new`` compares with ``ref``: identical, the same cells in another column order
    (a trajectory), or DIFFERS (missing on one side, or other bytes)."""
    if not ref.exists() or not new.exists():
        return "DIFFERS"
    old, now = canonical(ref.name, ref.read_text()), new.read_text()
    if old == now:
        return "identical"
    return "columns reordered" if ref.name == "trajectory.csv" and same_columns(old, now) else "DIFFERS"


def compare(ref: Path) -> int:
    """Run every case anew and compare with ``ref``; the number of runs with a differing file (a
    trajectory whose columns only moved is reported, not counted)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_all(Path(tmp), ref / "stopped")
        bad = 0
        for case in [*CASES, "resumed"]:
            names = sorted({p.name for d in (ref / case, Path(tmp) / case) for p in d.glob("*")})
            verdicts = {n: verdict(ref / case / n, Path(tmp) / case / n) for n in names}
            odd = {n: v for n, v in verdicts.items() if v != "identical"}
            bad += "DIFFERS" in odd.values()
            print(f"{case}: {'identical' if not odd else ', '.join(f'{n} {v}' for n, v in odd.items())} "
                  f"({len(names)} files)")
        return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="write the reference files here")
    group.add_argument("--compare", type=Path, help="compare with the reference files here")
    args = parser.parse_args()
    if args.write:
        run_all(args.write)
    else:
        sys.exit(1 if compare(args.compare) else 0)


if __name__ == "__main__":
    main()
