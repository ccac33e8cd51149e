"""RUAS Table 4 with a random baseline: cooperative, global, independent and random search on the
same data, seeds and budget; every genotype retrained with one train recipe and scored on the MIT
pairs (PSNR/SSIM, mean ± std over the seeds), printed as a Markdown table.

Each (strategy, seed) runs the real commands: ``nas-llv search`` (the search recipe with
``search.strategy`` set), ``nas-llv train`` on its run folder, ``nas-llv eval`` on ``--mit``.
The three DARTS strategies get ``--epochs`` x ``--steps-per-epoch`` iterations; random search gets
the same number of forward-backward passes (docs/random.md): a finite_difference level update
costs 5 passes (4 for the hypergradient, 1 weight step) where a random-search one costs 1, so
random trains ``--candidates`` genotypes for 5 x epochs x steps_per_epoch / candidates
iterations each. Search seconds are measured and printed beside the PSNR, so the equality can be
checked in time as well.

    python benchmarks/strategies.py [--seeds 0,1,2] [--epochs 8] [--steps-per-epoch 2]
        [--candidates 8] [--train-steps 120] [--mit ../shared/data/mit5] [--work DIR] [--set KEY=VALUE ...]
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH_RECIPE = ROOT / "recipes" / "ruas_demo.yaml"
TRAIN_RECIPE = ROOT / "recipes" / "ruas_demo_train.yaml"
STRATEGIES = ("cooperative", "global", "independent", "random")
# both recipes' data: low-light images synthesised from the bundled photographs (docs/data.md),
# exposures 1/8 to 1/2 as MIT-Adobe FiveK's under-exposed inputs; the MIT pairs are test data only
SYNTH = ["data.type=synth", "data.demo_count=null", "data.demo_size=null", "data.exposure_min=0.125",
         "data.exposure_max=0.5"]
SEARCH_DATA = [*SYNTH, "data.synth_count=16", "data.synth_size=64", "data.paired=false", "data.crop=32",
               "data.batch_size=1"]
TRAIN_DATA = [*SYNTH, "data.synth_count=32", "data.synth_size=64", "data.crop=32", "data.batch_size=2"]
PASSES_PER_SEARCH_UPDATE = 5  # finite_difference: 4 passes for the hypergradient + 1 weight step
PAPER = {"global": "14.496 / 0.543", "independent": "15.841 / 0.584", "cooperative": "18.226 / 0.717",
         "random": "not reported"}  # RUAS TPAMI Table 4 (MIT-Adobe FiveK), PSNR / SSIM


def nas_llv(*args: str) -> str:
    """Run ``nas-llv ARGS`` in a fresh process; its standard output (the run folder's last line)."""
    done = subprocess.run([sys.executable, "-m", "nas_llv", *args], capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"nas-llv {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def search_overrides(strategy: str, seed: int, args: argparse.Namespace) -> list[str]:
    """The search recipe's overrides for ``strategy`` at ``seed``, at the shared budget."""
    common = [f"seed={seed}", f"data.seed={seed}", *SEARCH_DATA, f"search.strategy={strategy}",
              "search.hypergrad={type: finite_difference}", *args.set]
    if strategy != "random":
        return [*common, f"search.epochs={args.epochs}", f"search.steps_per_epoch={args.steps_per_epoch}"]
    return [*common, f"search.epochs={args.candidates}", f"search.steps_per_epoch={random_steps(args)}"]


def random_steps(args: argparse.Namespace) -> int:
    """Training iterations per random candidate at the DARTS strategies' number of passes."""
    return max(1, round(PASSES_PER_SEARCH_UPDATE * args.epochs * args.steps_per_epoch / args.candidates))


def one(strategy: str, seed: int, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Search, retrain, evaluate: PSNR, SSIM and the search's seconds."""
    run = nas_llv("search", str(SEARCH_RECIPE), *search_overrides(strategy, seed, args),
                  "--output", str(work / "search")).strip().splitlines()[-1]
    with open(Path(run) / "trajectory.csv", newline="") as f:
        search_s = float(list(csv.DictReader(f))[-1]["seconds"])  # the loop's own clock, no start-up
    trained = nas_llv("train", run, "--recipe", str(TRAIN_RECIPE), f"seed={seed}", f"data.seed={seed}",
                      *TRAIN_DATA, f"train.steps={args.train_steps}",
                      "--output", str(work / "train")).strip().splitlines()[-1]
    out = work / "eval" / f"{strategy}-{seed}"
    nas_llv("eval", trained, "--data", str(args.mit), "--lpips-net", "none", "--repeats", "1", "--warmup", "0",
            "-q", "-o", str(out))
    summary = json.loads((out / "summary.json").read_text())
    return {"psnr": summary["psnr"], "ssim": summary["ssim"], "search_s": search_s}


def pm(values: list[float], digits: int) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> list[str]:
    budget = {s: (f"{args.epochs} epochs x {args.steps_per_epoch} it." if s != "random" else
                  f"{args.candidates} cand. x {random_steps(args)} it.") for s in results}
    lines = ["| strategy | search budget | search s | PSNR (dB) | SSIM | paper Table 4 PSNR / SSIM |",
             "| --- | --- | --- | --- | --- | --- |"]
    for s, rows in results.items():
        lines.append(f"| {s} | {budget[s]} | {pm([r['search_s'] for r in rows], 1)} | "
                     f"{pm([r['psnr'] for r in rows], 2)} | {pm([r['ssim'] for r in rows], 3)} | {PAPER[s]} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--steps-per-epoch", type=int, default=2)
    p.add_argument("--candidates", type=int, default=8, help="random search: genotypes sampled (default 8)")
    p.add_argument("--train-steps", type=int, default=120)
    p.add_argument("--mit", type=Path, default=ROOT.parent / "shared" / "data" / "mit5")
    p.add_argument("--work", type=Path, help="folder for the runs (default: a temporary one)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra search-recipe overrides")
    p.add_argument("--from-results", type=Path, metavar="JSONL", help="print the table of a (possibly stopped) "
                   "run's results.jsonl instead of running (pass the budget options it ran with)")
    args = p.parse_args()
    if args.from_results:
        results: dict[str, list[dict[str, float]]] = {}
        for line in args.from_results.read_text().splitlines():
            row = json.loads(line)
            results.setdefault(row["strategy"], []).append(row)
        print("\n".join(table(results, args)))
        return
    if not (args.mit / "low").is_dir():
        sys.exit(f"{args.mit}: no low/ folder; pass --mit DIR with the MIT pairs (low/, high/)")
    seeds = [int(s) for s in args.seeds.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix="strategies-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"runs under {work}", file=sys.stderr)
    results = {}
    for seed in seeds:  # seed-major: a run stopped early still compares every strategy
        for strategy in args.strategies.split(","):
            row = one(strategy, seed, args, work)
            results.setdefault(strategy, []).append(row)
            with open(work / "results.jsonl", "a") as f:  # kept as it goes: a stopped run keeps its rows
                f.write(json.dumps({"strategy": strategy, "seed": seed, **row}) + "\n")
            print(f"{strategy} seed {seed}: {row['psnr']:.2f} dB / {row['ssim']:.3f}, search {row['search_s']:.1f} s",
                  file=sys.stderr, flush=True)
    print(f"data synth (search: 16 unpaired 64 px images, 32 px crops, batch 1; retraining: 32 pairs, "
          f"32 px crops, batch 2), seeds {args.seeds}, retrained {args.train_steps} steps with "
          f"{TRAIN_RECIPE.name}'s objective, scored on {args.mit.name}\n")
    print("\n".join(table(results, args)))


if __name__ == "__main__":
    main()
