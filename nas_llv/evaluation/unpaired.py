"""Evaluate a fixed network on images without ground truth: no-reference scores per image.

NIQE and BRISQUE (lower is better; ``nas_llv.metrics.noref``) of each output, saved as 8 bits by
``--quantize``, and of its input; and the mean BT.601 brightness and the noise level (Tai & Yang
2008) of both, which need no extra package. Without the ``noref`` extra, one warning names the
package to install and the NIQE and BRISQUE cells stay empty. Cost is measured as for pairs
(docs/evaluation.md, "No-reference scores").
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from nas_llv.config import ConfigError
from nas_llv.data import UnpairedFolder, list_images
from nas_llv.data.io import to_levels
from nas_llv.enhance import enhance_tensor
from nas_llv.evaluation.options import EvalOptions
from nas_llv.evaluation.scoring import (build_summary, evaluate_model, evaluation_source, image_size, model_cost,
                                        write_results)
from nas_llv.metrics.noref import NIQE_MIN_SIZE, NOREF, NoReference, brightness, noise_sigma, scorer
from nas_llv.tiles import Tiler

if TYPE_CHECKING:
    from nas_llv.inference.engine import Prepared

log = logging.getLogger(__name__)

SCORES = (*NOREF, "brightness", "noise")
COLUMNS = (*SCORES, *(f"input_{k}" for k in SCORES))  # metrics.csv after "name": output's, then input's


def open_unpaired(root: str | Path) -> UnpairedFolder | None:
    """``root/low`` without ``root/high``, or images directly inside ``root`` (no ``low/``); None for
    any other layout (pairs, LOL, RELLISUR)."""
    root = Path(root)
    if (root / "low").is_dir():
        return None if (root / "high").is_dir() else UnpairedFolder(root / "low")
    if root.is_dir() and _images(root):
        return UnpairedFolder(root)
    return None


def _images(root: Path) -> list[Path]:
    try:
        return list_images(root)
    except ConfigError:  # no image directly inside: not an unpaired folder
        return []


def check_noref_sizes(folder: UnpairedFolder) -> None:
    """Every input at least NIQE_MIN_SIZE px a side (NIQE's two 96x96 blocks), before scoring anything."""
    for path in folder.files:
        size = image_size(path)
        if size is not None and min(size) < NIQE_MIN_SIZE:
            raise ConfigError(f"{path}: the image is {size[0]}x{size[1]}, smaller than NIQE needs (at least "
                              f"{NIQE_MIN_SIZE}x{NIQE_MIN_SIZE}: two 96x96 blocks a side)")


def score_levels(levels: torch.Tensor, name: str, noref: NoReference | None) -> dict[str, float | None]:
    """levels: (3, H, W) uint8 -> NIQE, BRISQUE (None without the extra), brightness and noise."""
    scores: dict[str, float | None] = dict.fromkeys(NOREF) if noref is None else noref(levels, name)
    noise = noise_sigma(levels)
    return {**scores, "brightness": brightness(levels), "noise": noise if math.isfinite(noise) else None}


def score_unpaired(net: torch.nn.Module, folder: UnpairedFolder, device: torch.device, noref: NoReference | None,
                   output: str = "x", quant: str = "round", progress: bool = True,
                   tile: int | None = None) -> list[dict[str, Any]]:
    """One row per image: ``{"name", *COLUMNS}``; each output is saved as 8 bits (``quant``) first."""
    net = net.to(device).eval()
    tiler = Tiler(lambda y: enhance_tensor(net, y, output), tile)
    rows = []
    for i in tqdm(range(len(folder)), desc="eval", unit="img", disable=None if progress else True):
        item = folder[i]
        out = to_levels(tiler(item["low"][None].to(device)).cpu(), quant)[0]
        given = to_levels(item["low"][None])[0]  # the file's own levels
        row = {"name": item["name"], **score_levels(out, item["name"], noref)}
        row.update({f"input_{k}": v for k, v in score_levels(given, item["name"] + " (input)", noref).items()})
        rows.append(row)
    return rows


def evaluate_unpaired(model: Prepared, folder: UnpairedFolder, data: str | Path, options: EvalOptions,
                      out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``evaluate_model`` for a folder without ground truth: metrics.csv (``name``, ``COLUMNS``) and
    summary.json (their means, the cost, the rules, the libraries), both or neither."""
    if options.gt_mean:
        raise ConfigError(f"--gt-mean rescales outputs to their ground truth, and {data} has none "
                          f"(unpaired images); drop --gt-mean")
    noref, libraries = scorer()
    if noref is not None:
        check_noref_sizes(folder)
    rows = score_unpaired(model.runner, folder, model.device, noref, options.output, options.quantize,
                          progress=options.progress, tile=options.tile)
    cost = model_cost(model.network, folder[0]["low"], model.device, options.repeats, options.warmup,
                      timed=model.runner)
    rules = {"ground_truth": False, "quantize": options.quantize, "output": options.output, "scale": model.scale,
             "engine": options.engine, **libraries}
    summary = build_summary(rows, cost, rules, evaluation_source(model, data), COLUMNS)
    write_results(out_dir, rows, summary, COLUMNS)
    return rows, summary


def evaluate_data(model: Prepared, data: str | Path, options: EvalOptions,
                  out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Images without ground truth (``open_unpaired``) by ``evaluate_unpaired``, pairs by
    ``scoring.evaluate_model``; returns the per-image rows and the summary record."""
    options.check()
    folder = open_unpaired(data)
    if folder is None:
        return evaluate_model(model, data, options, out_dir)
    return evaluate_unpaired(model, folder, data, options, out_dir)
