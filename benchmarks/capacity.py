"""Keeping the denoiser: one recipe searched on clean and on noisy data, a 2x2 table (issue 26, item 4).

Protocol (docs/quality.md, "Keeping the denoiser: clean against noisy data"):

1. Two noise settings of the synthesis (``data.type: synth``): ``noisy``, its default noise
   (photons 300-3000, read 0.001-0.005: stronger than DARK FACE's); ``clean``, near noiseless
   (photons 100,000-2,400,000, read 1e-6-1.8e-6: `nas-llv data noise`'s fit to DARK FACE).
2. Validation pairs of each from photographs neither recipe trains on (``--val-sources``, sklearn
   and sporco; the recipes draw on ``bundled`` alone), synthesis seed 1, the retraining's exposures.
3. At each seed, one search recipe (``recipes/ruas_quality.yaml`` with the denoiser's presence a
   choice, space ``ruas_denoise_capacity``, and the cost hinge above 1.0 GFLOPs at 600x400) runs on
   clean and on noisy data. Each genotype is retrained (``recipes/ruas_quality_train.yaml``) on
   clean and on noisy data and scored on that setting's validation pairs: four trainings a seed.
4. Pass (the issue's): on each data, the genotype searched on it scores better than the other's.

    python benchmarks/capacity.py [--seeds 0 1 2] [--jobs 2] [--work DIR] [--train-steps N]

``--train-steps``/``--search-epochs`` below the recipes' 400/8 are a reduced budget; the report says so.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_protocol import RETRAINING_EXPOSURES, mean, score, write_pairs  # noqa: E402 (the same eval, validation sets and mean)
from strategies import nas_llv, paired_tests  # noqa: E402 (the same fresh-process runner)

ROOT = Path(__file__).resolve().parents[1]
SEARCH = str(ROOT / "recipes" / "ruas_quality.yaml")
TRAIN = str(ROOT / "recipes" / "ruas_quality_train.yaml")
# data -> synthesis noise keys
NOISE = {
    "clean": {"photons_min": 100000, "photons_max": 2400000, "read_min": 1.0e-6, "read_max": 1.8e-6},
    "noisy": {"photons_min": 300, "photons_max": 3000, "read_min": 1.0e-3, "read_max": 5.0e-3},
}
# the search: the denoiser's presence searched, priced by the hinge (set here, whatever the recipe says)
SEARCH_OVERRIDES = ["network.spaces.denoise=ruas_denoise_capacity",
                    "search.cost={type: flops, size: [600, 400], target: 1.0, weight: 1.0}"]
LOCK = threading.Lock()


def noise_overrides(data: str) -> list[str]:
    return [f"data.{k}={v}" for k, v in NOISE[data].items()]


def search(data: str, seed: int, epochs: int, work: Path, extra: tuple[str, ...] = ()) -> dict:
    run = nas_llv("search", SEARCH, f"seed={seed}", f"data.seed={seed}", f"search.epochs={epochs}",
                  *SEARCH_OVERRIDES, *extra, *noise_overrides(data), "--output", str(work / "search"))
    import yaml

    geno = yaml.safe_load(Path(run, "genotype.yaml").read_text())
    denoise = {k: v for k, v in geno["genotype"].items() if k.startswith("denoise.")}
    return {"searched_on": data, "seed": seed, "run": run, "presence": denoise.get("denoise.presence"),
            "skips": sum(v == "skip" for k, v in denoise.items() if k != "denoise.presence"),
            "search_gflops_600x400": geno.get("meta", {}).get("cost", {}).get("value")}


def retrain(found: dict, data: str, steps: int, val: Path, work: Path) -> dict:
    seed = found["seed"]
    trained = nas_llv("train", found["run"], "--recipe", TRAIN, f"seed={seed}", f"data.seed={seed}",
                      f"train.steps={steps}", *noise_overrides(data), "--output", str(work / "train"))
    name = f"{found['searched_on']}-{data}-{seed}"
    return {**{k: found[k] for k in ("searched_on", "seed", "presence", "skips", "search_gflops_600x400")},
            "trained_on": data, "model": f"{trained}/model.pt", **score(f"{trained}/model.pt", val, work / "eval" / name)}


def run_seed(seed: int, vals: dict[str, Path], args: argparse.Namespace, work: Path, done: set) -> list[dict]:
    rows = []
    for searched_on in NOISE:
        if all((searched_on, d, seed) in done for d in NOISE):
            continue
        found = search(searched_on, seed, args.search_epochs, work, tuple(args.search_override))
        for data in NOISE:
            if (searched_on, data, seed) in done:
                continue
            row = retrain(found, data, args.train_steps, vals[data], work)
            with LOCK, open(work / "results.jsonl", "a") as f:  # kept as it goes
                f.write(json.dumps(row) + "\n")
            print(f"searched on {searched_on}, trained/scored on {data}, seed {seed}: presence {row['presence']}, "
                  f"{row['psnr']:.2f} dB / {row['ssim']:.3f}", file=sys.stderr)
            rows.append(row)
    return rows


def report(rows: list[dict]) -> list[str]:
    """The 2x2 (mean over seeds), each cell's per-seed PSNR, the paired test per data column."""
    cell = {(s, d): sorted((r for r in rows if r["searched_on"] == s and r["trained_on"] == d), key=lambda r: r["seed"])
            for s in NOISE for d in NOISE}
    lines = ["| genotype searched on | presence chosen (per seed) | retrained, scored on clean: PSNR / SSIM | on noisy: PSNR / SSIM |",
             "| --- | --- | --- | --- |"]
    for s in NOISE:
        chosen = ", ".join(str(r["presence"]) for r in cell[(s, s)])
        cols = [f"{mean(cell[(s, d)], 'psnr'):.2f} / {mean(cell[(s, d)], 'ssim'):.3f} ({per_seed(cell[(s, d)])})"
                if cell[(s, d)] else "-" for d in NOISE]
        lines.append(f"| {s} | {chosen} | {' | '.join(cols)} |")
    for d in NOISE:
        own, other = cell[(d, d)], cell[(next(x for x in NOISE if x != d), d)]
        seeds = sorted({r["seed"] for r in own} & {r["seed"] for r in other})
        if len(seeds) >= 2:
            a = [r["psnr"] for r in own if r["seed"] in seeds]
            b = [r["psnr"] for r in other if r["seed"] in seeds]
            lines.append(f"\non {d}: own genotype - other's = {statistics.fmean(a) - statistics.fmean(b):+.2f} dB "
                         f"over seeds {seeds}, paired t p = {paired_tests(a, b)[1]:.3f}")
    return lines


def per_seed(rows: list[dict]) -> str:
    return " ".join(f"{r['psnr']:.2f}" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--search-epochs", type=int, default=8, help="the search recipe's 8")
    p.add_argument("--train-steps", type=int, default=400, help="the retraining recipe's 400")
    p.add_argument("--val-sources", nargs="+", default=["sklearn", "sporco"],
                   help="photo sets for validation (never in the recipes' 'bundled'; docs/data.md)")
    p.add_argument("--val-count", type=int, default=32)
    p.add_argument("--search-override", nargs="*", default=[],
                   help="more search recipe keys, e.g. 'search.presence={weights: present}' (docs/extensions.md)")
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--work", type=Path)
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="capacity-"))
    work.mkdir(parents=True, exist_ok=True)
    # the retraining's exposures, each data's noise, from photographs the recipe never trains on
    vals = {d: write_pairs(work / f"val-{d}", args.val_count, args.val_size, sources=tuple(args.val_sources),
                           **RETRAINING_EXPOSURES, **NOISE[d]) for d in NOISE}
    results = work / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    done = {(r["searched_on"], r["trained_on"], r["seed"]) for r in rows}
    print(f"runs under {work}", file=sys.stderr)
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for fut in cf.as_completed([pool.submit(run_seed, s, vals, args, work, done) for s in args.seeds]):
            rows.extend(fut.result())
    print(f"search epochs {args.search_epochs}, retraining steps {args.train_steps}, seeds {args.seeds}")
    print("\n".join(report(rows)))


if __name__ == "__main__":
    main()
