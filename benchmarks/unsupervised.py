"""RUAS's training without ground truth: choose the exposure level on validation, score the test once.

Protocol (docs/training.md, "Training without ground truth"):

1. Validation pairs, never the test images: ``--val-count`` low-light pairs synthesised from the
   photographs the installed packages bundle (``data.type: synth``, exposures 1/8 to 1/2 as
   under-exposed photographs, seed 1), written once to ``WORK/synth_val/{low,high}``.
2. For each exposure level of ``--levels`` and length of ``--steps``: ``nas-llv train TARGET --recipe
   recipes/ruas_unsupervised_train.yaml losses.scene.terms.exposure.level=E train.steps=N`` on the dark photos
   (``--data``, no ground truth), then ``nas-llv eval`` of its final step on the validation pairs.
   ``--train-on synth:MIN-MAX`` trains instead on low images synthesised at exposures MIN to MAX
   from ``--synth-sources`` (default sklearn, sporco, mvtb: never the validation's bundled
   photographs, checked), with ``paired: false``, so no ground truth exists for a loss to read.
3. The (training images, level, steps) with the best mean validation PSNR over the seeds is the choice. Only that
   setting is scored on ``--test`` (the MIT pairs), once; the others' test scores are not computed (``--no-test``: none).
   A run already finished in ``--work`` (its ``model.pt``) by an earlier call is reused, not retrained.
4. Every run's output on the dark photos is checked for a colour cast (channel means of the
   enhanced images) and brightness.
5. ``--variants``: named sets of recipe overrides (``VARIANTS``), trained at each level, length and
   seed like the recipe, and chosen among on validation with the rest: ``recipe`` (none), ``sci``
   (SCI's self-calibration, loss ``sci_calibration`` with 3 stages, replacing the recipe's
   ``ruas_scene`` term, whose stage 0 it contains, and keeping the exposure and colour terms),
   ``sci_alone`` (SCI's loss alone, 3 stages), ``sci_light`` (the recipe unchanged plus SCI's loss at
   weight 0.1).
6. ``--authors-steps``: the authors' own loop for reference (their scene loss alone, SGD lr 0.015,
   momentum 0.9, weight decay 3e-4, batch 1, 256x256 crops, a constant lr), stopped after each
   number of steps and scored on the test pairs: a trajectory, not a selection.

    python benchmarks/unsupervised.py --target upe_model.pt [--levels 0.1 0.15 0.2 0.3] [--steps 600 2000] [--seeds 0 1 2] [--jobs 2]
        [--train-on dark synth:0.02-0.2] [--variants recipe sci sci_alone]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_protocol import write_pairs  # noqa: E402 (the benchmarks' one writer of synthesised pairs)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RECIPE = ROOT / "recipes" / "ruas_unsupervised_train.yaml"
VAL_SOURCES = ["bundled"]  # the validation pairs' photographs (synth's default set)


def cli(*args: str, threads: int = 1) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", "nas_llv", *args, "--threads", str(threads)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nas-llv {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def summary(run: Path, data: Path) -> dict[str, float]:
    out = run / f"eval-{data.name}"
    cli("eval", str(run / "model.pt"), "--data", str(data), "--lpips-net", "none", "-o", str(out))
    record = json.loads((out / "summary.json").read_text())
    return {"psnr": record["psnr"], "ssim": record["ssim"]}


@torch.no_grad()
def cast(run: Path, photos: Path) -> dict[str, object]:
    """Mean output per channel over the dark photos (half size) and the largest channel gap."""
    from nas_llv.data.io import list_images, read_image
    from nas_llv.export.modelfile import load_model
    net = load_model(run / "model.pt")[0].eval()
    means = torch.stack([net(read_image(f)[None, :, ::2, ::2])["x"].clamp(0, 1).mean(dim=(0, 2, 3))
                         for f in list_images(photos)]).mean(0)
    return {"rgb": [round(float(m), 3) for m in means], "gap": round(float(means.max() - means.min()), 3)}


def training_data(train_on: str, data: Path, sources: list[str]) -> str:
    """The ``data`` override of one ``--train-on`` entry: ``dark`` (the folder of dark photos) or
    ``synth:MIN-MAX`` (low images synthesised at exposures MIN to MAX from ``sources``, ``paired:
    false``: no ground truth is ever made, so no loss can read one)."""
    if train_on == "dark":
        return f"data.root={data}"
    lo, hi = (float(v) for v in train_on.removeprefix("synth:").split("-"))
    return (f"data={{type: synth, sources: [{', '.join(sources)}], paired: false, synth_count: 1024, "
            f"synth_size: 128, exposure_min: {lo}, exposure_max: {hi}, crop: 128, batch_size: 4, val_ratio: 0.1}}")


# --variants: recipe overrides applied before the level's (docs/training.md, "SCI's self-calibration")
_SCI = "losses.calibrate={type: sci_calibration, stages: 3}"
VARIANTS: dict[str, list[str]] = {
    "recipe": [],
    "sci": [_SCI, "losses.scene={terms: {exposure: {type: exposure, level: 0.1, patch: 4096}, "
                  "color: {type: color_constancy}}, coefficients: {exposure: 1.0, color: 5.0}}",
            "train.objective={scene: 1.0, calibrate: 1.0}"],
    "sci_alone": [_SCI, "train.objective={calibrate: 1.0}"],
    # the recipe as it is, plus SCI's stage sum at a tenth of its weight
    "sci_light": [_SCI, "train.objective={scene: 1.0, calibrate: 0.1}"],
}


def one(train_on: str, level: float, steps: int, variant: str, seed: int, target: Path, data: Path, work: Path,
        val: Path, sources: list[str]) -> dict[str, object]:
    name = f"{train_on.replace(':', '')}-level{level}-steps{steps}" + ("" if variant == "recipe" else f"-{variant}")
    out = work / f"{name}-seed{seed}"
    done = sorted(out.glob("*/model.pt"))  # a finished run of an earlier call with this --work
    run = done[-1].parent if done else Path(cli(
        "train", str(target), "--recipe", str(RECIPE), "--output", str(out), *VARIANTS[variant],
        f"losses.scene.terms.exposure.level={level}", f"train.steps={steps}", f"seed={seed}",
        training_data(train_on, data, sources)))
    return {"train_on": train_on, "level": level, "steps": steps, "variant": variant, "seed": seed, "run": str(run),
            "val": summary(run, val), "dark": cast(run, data)}


def check_disjoint(sources: list[str], val_sources: list[str]) -> None:
    """Synthesised training lows must come from other photographs than the validation pairs."""
    from nas_llv.data.photos import photo_names
    shared = set(photo_names(sources)) & set(photo_names(val_sources))
    if shared:
        raise SystemExit(f"--synth-sources share photographs with the validation pairs: {sorted(shared)}")


AUTHORS = ["losses.scene={type: ruas_scene, smooth: code_ycbcr}", "data.crop=256", "data.batch_size=1",
           "train.optim={optimizer: sgd, lr: 0.015, momentum: 0.9, weight_decay: 3.0e-4, schedule: constant, grad_clip: 5.0}"]


def authors(steps: int, target: Path, data: Path, work: Path, test: Path) -> dict[str, object]:
    run = Path(cli("train", str(target), "--recipe", str(RECIPE), "--output", str(work / f"authors-{steps}"),
                   *AUTHORS, f"train.steps={steps}", f"train.val_every={steps}", f"train.checkpoint_every={steps}",
                   f"data.root={data}"))
    return {"authors_loop_steps": steps, "test": summary(run, test), "dark": cast(run, data)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, required=True, help="model file or genotype to retrain (upe_model.pt)")
    ap.add_argument("--data", type=Path, default=SHARED / "darkface5")
    ap.add_argument("--test", type=Path, default=SHARED / "mit5")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.125, 0.15, 0.2, 0.3])
    ap.add_argument("--steps", type=int, nargs="+", default=[600], help="training steps (the recipe's 600)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--val-count", type=int, default=24)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--train-on", nargs="+", default=["dark"],
                    help="training images: 'dark' (--data) and/or 'synth:MIN-MAX', lows synthesised at those exposures")
    ap.add_argument("--synth-sources", nargs="+", default=["sklearn", "sporco", "mvtb"],
                    help="photo sets of the synthesised training lows (never the validation's bundled set)")
    ap.add_argument("--variants", nargs="+", default=["recipe"], choices=sorted(VARIANTS),
                    help="recipe overrides to compare (VARIANTS): recipe, sci, sci_alone, sci_light")
    ap.add_argument("--no-test", action="store_true", help="stop after the choice on validation")
    ap.add_argument("--authors-steps", type=int, nargs="*", default=[], help="also run the authors' loop this long")
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="unsupervised-"))
    # under-exposed photographs (1/8 to 1/2) from the bundled ones, never MIT, DARK FACE or LOL
    val = write_pairs(work / "synth_val", a.val_count, 128, sources=tuple(VAL_SOURCES), exposure_min=0.125, exposure_max=0.5)
    if a.authors_steps:
        with cf.ThreadPoolExecutor(a.jobs) as pool:
            for row in pool.map(lambda n: authors(n, a.target.resolve(), a.data.resolve(), work, a.test), a.authors_steps):
                print(json.dumps(row), flush=True)
    if any(t != "dark" for t in a.train_on):
        check_disjoint(a.synth_sources, VAL_SOURCES)
    settings = [(t, lv, n, v) for t in a.train_on for lv in a.levels for n in a.steps for v in a.variants]
    jobs = [(*k, s) for k in settings for s in a.seeds]
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        rows = list(pool.map(lambda j: one(*j, a.target.resolve(), a.data.resolve(), work, val, a.synth_sources), jobs))
    for r in rows:
        print(json.dumps(r), flush=True)
    grid = {k: [r["val"]["psnr"] for r in rows if (r["train_on"], r["level"], r["steps"], r["variant"]) == k]
            for k in settings}
    best = max(grid, key=lambda k: sum(grid[k]) / len(grid[k]))
    print("validation PSNR by (train on, level, steps, variant): "
          + ", ".join(f"{k}: {sum(v) / len(v):.2f}" for k, v in grid.items()))
    if a.no_test:
        return
    print(f"chosen: training on {best[0]}, level {best[1]}, {best[2]} steps, variant {best[3]}; "
          f"its runs scored once on {a.test}:")
    for r in rows:
        if (r["train_on"], r["level"], r["steps"], r["variant"]) == best:
            print(json.dumps({"seed": r["seed"], "test": summary(Path(r["run"]), a.test), "dark": r["dark"]}))


if __name__ == "__main__":
    main()
