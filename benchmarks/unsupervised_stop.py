"""Can a no-reference measure stop RUAS's unsupervised training? Trajectories, no test images.

Issue 25 asks for a stopping rule that uses no ground truth. This trains RUAS_s (``--target``,
from random weights) on the dark photos (``--data``, no ground truth) with either

- ``authors``: the public code's loop (its scene loss alone, SGD lr 0.015, momentum 0.9, weight
  decay 3e-4, batch 1, 256x256 crops, constant lr), which drifts towards white, or
- ``recipe``: ``recipes/ruas_unsupervised_train.yaml`` as shipped,

and every ``--every`` steps prints one JSON row: the no-reference measures a stopping rule could
use on the dark photos (mean NIQE of the outputs at half size, mean BT.601 brightness, largest
channel-mean gap) beside the PSNR/SSIM on the synthesised validation pairs of
``benchmarks/unsupervised.py`` (a measure the rule must track; never the MIT test pairs).
``--reference`` adds one row for the model file as it is (e.g. the published ``upe.pt``,
imported): where it stands on the same measures.

    python benchmarks/unsupervised_stop.py --target upe_model.pt --mode authors recipe --seeds 0 1 2 --steps 800 --every 25
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

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_protocol import write_pairs  # noqa: E402 (the benchmarks' validation writer)
from unsupervised import AUTHORS, RECIPE, SHARED  # noqa: E402 (one statement of the authors' loop)


class Measures:
    """The validation pairs and the dark photos, read once; ``__call__`` measures a network."""

    def __init__(self, val: Path, dark: Path) -> None:
        from nas_llv.data.io import list_images, read_image
        from nas_llv.metrics.noref import NoReference

        self.pairs = [(read_image(lo)[None], read_image(val / "high" / lo.name)[None])
                      for lo in sorted((val / "low").iterdir())]
        self.dark = [read_image(f)[None, :, ::2, ::2] for f in list_images(dark)]
        self.noref = NoReference()

    @torch.no_grad()
    def __call__(self, net: torch.nn.Module) -> dict[str, float]:
        from nas_llv.evaluation.scoring import image_metrics
        from nas_llv.metrics.noref import brightness

        was = net.training
        net.eval()
        scores = [image_metrics(net(lo)["x"], hi) for lo, hi in self.pairs]
        niqe, light, gap = [], [], []
        for d in self.dark:
            x = net(d)["x"].clamp(0, 1)[0]
            levels = (x * 255).round().to(torch.uint8)
            niqe.append(self.noref.niqe(levels.permute(1, 2, 0).numpy()))
            light.append(brightness(levels))
            channel = x.mean(dim=(1, 2))
            gap.append(float(channel.max() - channel.min()))
        net.train(was)
        return {"val_psnr": round(statistics.fmean([float(s["psnr"][0]) for s in scores]), 3),
                "val_ssim": round(statistics.fmean([float(s["ssim"][0]) for s in scores]), 4),
                "niqe": round(statistics.fmean(niqe), 3), "brightness": round(statistics.fmean(light), 4), "gap": round(max(gap), 4)}


BUILDING = threading.Lock()  # a Trainer seeds the global RNG and draws its initial weights from it


def trajectory(mode: str, seed: int, a: argparse.Namespace, measures: Measures) -> list[dict]:
    from nas_llv.recipe import load_recipe
    from nas_llv.retrain.trainer import Trainer, load_source

    overrides = [*(AUTHORS if mode == "authors" else []), f"seed={seed}", f"train.steps={a.steps}", f"data.root={a.data}"]
    genotype, build = load_source(a.target)
    with BUILDING:
        trainer = Trainer(load_recipe(RECIPE, overrides), genotype, build)  # the CLI's training, step by step
    rows = [{"mode": mode, "seed": seed, "step": 0, **measures(trainer.net)}]
    while not trainer.done():
        trainer._iteration()
        if trainer.step % a.every == 0:
            rows.append({"mode": mode, "seed": seed, "step": trainer.step, **measures(trainer.net)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, required=True, help="model file or genotype to retrain (upe_model.pt)")
    ap.add_argument("--data", type=Path, default=SHARED / "darkface5")
    ap.add_argument("--mode", nargs="+", choices=("authors", "recipe"), default=["authors", "recipe"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--reference", type=Path, default=None, help="a model file measured as it is (upe_model.pt)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.work or Path(tempfile.mkdtemp(prefix="unsupervised-stop-"))
    val = write_pairs(work / "synth_val", 24, 128, exposure_min=0.125, exposure_max=0.5)  # as unsupervised.py's
    measures = Measures(val, a.data)
    if a.reference is not None:
        from nas_llv.export.modelfile import load_model
        print(json.dumps({"reference": str(a.reference), **measures(load_model(a.reference)[0])}), flush=True)
    jobs = [(m, s) for m in a.mode for s in a.seeds]
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        runs = list(pool.map(lambda j: trajectory(*j, a, measures), jobs))
    for rows in runs:  # where each measure would stop, against where validation peaks
        best = max(rows, key=lambda r: r["val_psnr"])
        least = min(rows, key=lambda r: r["niqe"])
        print(json.dumps({"mode": rows[0]["mode"], "seed": rows[0]["seed"],
                          "validation_peak": {"step": best["step"], "val_psnr": best["val_psnr"]},
                          "niqe_minimum": {"step": least["step"], "val_psnr": least["val_psnr"], "niqe": least["niqe"]},
                          "final": {"step": rows[-1]["step"], "val_psnr": rows[-1]["val_psnr"],
                                    "brightness": rows[-1]["brightness"]}}), flush=True)


if __name__ == "__main__":
    main()
