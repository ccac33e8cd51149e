"""The quality pair's configuration chosen on validation, never on the test images (issue 26).

Protocol (docs/quality.md, "The protocol"):

1. Validation pairs from photographs that neither recipe trains on: ``--val-count`` low-light
   pairs synthesised (``data.type: synth``, the retraining's exposures 1/20-1/5, gamma only, its
   noise) from the photo sets of ``--val-sources`` (docs/data.md, "Sources"). The recipes draw on
   ``bundled`` alone, so no validation photograph is ever trained on. Written once to
   ``WORK/val/{low,high}``.
2. Each configuration of ``CONFIGS`` (the choices docs/quality.md's table once made on MIT5)
   runs the real commands at each seed: ``nas-llv search recipes/ruas_quality.yaml`` with its
   overrides, ``nas-llv train RUN --recipe recipes/ruas_quality_train.yaml``, ``nas-llv eval`` of the
   final step on the validation pairs.
3. The configuration with the best mean validation PSNR over the seeds is the choice. Only its
   models are scored on ``--test`` (the MIT pairs), once each; no other configuration is.

    python benchmarks/quality_protocol.py [--seeds 0 1] [--jobs 2] [--work DIR]
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
from strategies import nas_llv, paired_tests  # noqa: E402 (the same fresh-process runner)

ROOT = Path(__file__).resolve().parents[1]
SEARCH = str(ROOT / "recipes" / "ruas_quality.yaml")
TRAIN = str(ROOT / "recipes" / "ruas_quality_train.yaml")
UNSUPERVISED_TASK = "losses.task={type: ruas_denoise}"
# name -> search overrides: the 2x2 of docs/quality.md's rows 1, 5, 8 and 9 (the task level's
# objective, the cost hinge); "pair" is the recipes as written
CONFIGS = {
    "pair": [],
    "no_hinge": ["search.cost=null"],
    "paper_task": [UNSUPERVISED_TASK, "data.paired=false"],
    "paper_task_no_hinge": [UNSUPERVISED_TASK, "data.paired=false", "search.cost=null"],
}
LOCK = threading.Lock()
# the retraining's exposures (1/20-1/5) and curve (gamma only): the validation pairs' synthesis
RETRAINING_EXPOSURES = {"exposure_min": 0.05, "exposure_max": 0.2, "tone_curve": False}


def write_pairs(folder: Path, count: int, size: int, **synth: object) -> Path:
    """``count`` pairs of ``size`` synthesised with ``synth``'s options (synthesis seed 1), written
    once to ``folder/{low,high}``; the validation sets of this and the other benchmarks."""
    from nas_llv.data.io import write_image
    from nas_llv.data.synth import build_synth

    if (folder / "high").is_dir():
        return folder
    pairs = build_synth(seed=1, synth_count=count, synth_size=size, **synth)
    for i in range(len(pairs)):
        item = pairs[i]
        write_image(folder / "low" / f"{i:03d}.png", item["low"])
        write_image(folder / "high" / f"{i:03d}.png", item["high"])
    return folder


def score(model: str, data: Path, out: Path) -> dict:
    nas_llv("eval", model, "--data", str(data), "--lpips-net", "none", "--repeats", "1", "--warmup", "0", "-q",
            "-o", str(out))
    s = json.loads((out / "summary.json").read_text())
    return {"psnr": s["psnr"], "ssim": s["ssim"], "gflops": s["flops"] / 1e9}


def run_config(name: str, seed: int, val: Path, work: Path) -> dict:
    """Search, retrain and score on validation one (configuration, seed)."""
    run = nas_llv("search", SEARCH, f"seed={seed}", f"data.seed={seed}", *CONFIGS[name], "--output",
                  str(work / "search"))
    trained = nas_llv("train", run, "--recipe", TRAIN, f"seed={seed}", f"data.seed={seed}", "--output",
                      str(work / "train"))
    return {"config": name, "seed": seed, "model": f"{trained}/model.pt",
            **score(f"{trained}/model.pt", val, work / "eval-val" / f"{name}-{seed}")}


def per_seed(rows: list[dict]) -> str:
    return " / ".join(f"{r['psnr']:.2f}" for r in rows)


def mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(r[key] for r in rows) if rows else float("nan")


def choose(rows: list[dict], configs: list[str], seeds: list[int]) -> tuple[dict[str, list[dict]], str, dict[str, str]]:
    """The rows at ``seeds`` of each configuration run at every one of them (by seed), the one with
    the best mean ``psnr`` (the criterion), and each one's paired t-test p against it ("-" for the
    choice). Rows at other seeds (a later run's, in the same results file) are left out."""
    by = {c: sorted((r for r in rows if r["config"] == c and r["seed"] in seeds), key=lambda r: r["seed"])
          for c in configs}
    full = {c: rs for c, rs in by.items() if [r["seed"] for r in rs] == seeds}
    best = max(full, key=lambda c: mean(full[c], "psnr"))
    tests = {c: "-" if c == best else f"{paired_tests([r['psnr'] for r in full[best]], [r['psnr'] for r in rs])[1]:.3f}"
             for c, rs in full.items()}
    return full, best, tests


def report(rows: list[dict], seeds: list[int]) -> tuple[list[str], str]:
    """The validation table, and the chosen configuration (best mean validation PSNR)."""
    full, best, tests = choose(rows, list(CONFIGS), seeds)
    lines = ["| configuration | validation PSNR per seed (dB) | mean PSNR | mean SSIM | GFLOPs per validation image | vs the choice: paired t p |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c, rs in full.items():
        test = tests[c]
        lines.append(f"| {'**' + c + '**' if c == best else c} | {per_seed(rs)} | "
                     f"{mean(rs, 'psnr'):.2f} | {mean(rs, 'ssim'):.3f} | {mean(rs, 'gflops'):.3f} | {test} |")
    return lines, best


def keep(row: dict, results: Path, rows: list[dict]) -> dict:
    """Appends ``row`` to ``results`` (JSON lines) as it comes, so a stopped run keeps its rows."""
    with LOCK, open(results, "a") as f:
        f.write(json.dumps(row) + "\n")
    rows.append(row)
    return row


def score_chosen(rows: list[dict], best: str, seeds: list[int], test: Path, work: Path) -> None:
    """The chosen configuration's models at ``seeds`` scored on ``test``, once each, and printed; no
    other is."""
    print(f"\nchosen on validation: {best}. Its models on {test.name}, scored once:")
    tests = [score(r["model"], test, work / "eval-test" / f"{best}-{r['seed']}") | {"seed": r["seed"]}
             for r in rows if r["config"] == best and r["seed"] in seeds]
    for t in sorted(tests, key=lambda t: t["seed"]):
        print(f"  seed {t['seed']}: {t['psnr']:.2f} dB / {t['ssim']:.3f}")
    print(f"  mean: {mean(tests, 'psnr'):.2f} dB / {mean(tests, 'ssim'):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--val-sources", nargs="+", default=["sklearn", "sporco"],
                   help="photo sets for validation (never in the recipes' 'bundled'; docs/data.md)")
    p.add_argument("--val-count", type=int, default=32)
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--test", type=Path, default=ROOT.parent / "shared" / "data" / "mit5")
    p.add_argument("--work", type=Path)
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="quality-protocol-"))
    # the retraining's exposures and noise, from photographs the recipes never train on
    val = write_pairs(work / "val", args.val_count, args.val_size, sources=tuple(args.val_sources),
                      **RETRAINING_EXPOSURES)
    results = work / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    done = {(r["config"], r["seed"]) for r in rows}
    jobs = [(c, s) for c in args.configs for s in args.seeds if (c, s) not in done]
    print(f"runs under {work}", file=sys.stderr)
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        for fut in cf.as_completed([pool.submit(run_config, c, s, val, work) for c, s in jobs]):
            row = keep(fut.result(), results, rows)
            print(f"{row['config']} {row['seed']}: validation {row['psnr']:.2f} dB / {row['ssim']:.3f}", file=sys.stderr)
    lines, best = report(rows, sorted(args.seeds))
    print("\n".join(lines))
    score_chosen(rows, best, args.seeds, args.test, work)


if __name__ == "__main__":
    main()
