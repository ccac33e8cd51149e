"""How much of a network's PSNR is its global brightness? A diagnostic, never a selection.

For each model file and each folder of pairs (``DIR/low``, ``DIR/high``) it prints one JSON row:

- ``psnr``: the mean PSNR as ``nas-llv eval`` computes it (output clipped, rounded to 8 bits);
- ``gain``: the outputs' mean over the inputs' mean, pooled over the images;
- ``best_factor``, ``psnr_at_best``: the constant factor (0.50 to 2.00 in steps of 0.05) that,
  multiplied into every output before the 8-bit rounding, gives the best mean PSNR, and that PSNR.
  Above 1: the set's ground truths are brighter than the outputs; below 1: darker.

``--input-gains G ...`` adds rows for the input itself times each constant ``G`` (no network).
GT-mean PSNR, the published protocol that rescales each output to its ground truth's mean, is
``nas-llv eval MODEL --data DIR --gt-mean``. docs/training.md ("What the gap is") reports what this
printed for the unsupervised recipe. Run it after the choices it could inform, and use it to
explain them, never to make them.

    python benchmarks/brightness.py --models upe=upe_model.pt s0=RUN/model.pt --data VAL_PAIRS ../shared/data/mit5
        [--input-gains 2 2.5 2.9 3.5]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from nas_llv.data.folders import PairedFolder
from nas_llv.export.modelfile import load_model
from nas_llv.metrics.image import psnr, quantize

FACTORS = [round(0.5 + 0.05 * i, 2) for i in range(31)]


def pairs(root: Path) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(low, high) of each pair, matched by ``PairedFolder`` as ``eval`` matches them, in float64."""
    return [(item["low"][None].double(), item["high"][None].double()) for item in PairedFolder(root)]


def mean_psnr(outs: list[torch.Tensor], data: list[tuple[torch.Tensor, torch.Tensor]], factor: float = 1.0) -> float:
    return sum(float(psnr(quantize(o * factor), h)) for o, (_, h) in zip(outs, data)) / len(data)


def measure(outs: list[torch.Tensor], data: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    gain = sum(float(o.mean()) for o in outs) / sum(float(low.mean()) for low, _ in data)
    best = max(FACTORS, key=lambda f: mean_psnr(outs, data, f))
    return {"psnr": round(mean_psnr(outs, data), 2), "gain": round(gain, 3), "best_factor": best,
            "psnr_at_best": round(mean_psnr(outs, data, best), 2)}


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=[], metavar="NAME=MODEL", help="model files (nas-llv's)")
    ap.add_argument("--data", nargs="+", type=Path, required=True, help="folders of pairs: DIR/low, DIR/high")
    ap.add_argument("--input-gains", nargs="*", type=float, default=[], metavar="G",
                    help="also score the input times each constant G")
    a = ap.parse_args()
    sets = {d: pairs(d) for d in a.data}
    for spec in a.models:
        name, _, path = spec.partition("=")
        net = load_model(path or name)[0].eval()
        for d, data in sets.items():
            outs = [net(low.float())["x"].double() for low, _ in data]
            print(json.dumps({"model": name, "data": d.name, **measure(outs, data)}), flush=True)
    for g in a.input_gains:
        for d, data in sets.items():
            print(json.dumps({"model": f"input x {g}", "data": d.name,
                              "psnr": round(mean_psnr([low * g for low, _ in data], data), 2)}), flush=True)


if __name__ == "__main__":
    main()
