"""Evaluate a fixed network on paired images: per-image PSNR/SSIM/LPIPS/RMSE and model cost.

Rules (docs/evaluation.md): outputs are clipped to [0, 1] and quantised to 8 bits as a saved
image would be (``round`` by default, ``truncate`` as the RUAS authors save), ground truths are
read from their files; PSNR and SSIM on RGB with data_range 1 (scikit-image's definitions); no
GT-mean correction unless asked (then BT.601 luma means, after quantisation, no re-quantisation).
A super-resolution network of scale s is scored on its (sH, sW) output against the HR ground
truth, which must be exactly s times its input; its cost is measured at the (LR) input size.
"""
from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
from torch import nn
from tqdm import tqdm

from nas_llv import __version__
from nas_llv.config import ConfigError
from nas_llv.data import LowLightSRFolder, PairedFolder, lol
from nas_llv.data.rellisur import SPLIT_DIRS, find_sr_folders
from nas_llv.enhance import enhance_tensor, sweep_own_temp_files
from nas_llv.evaluation.options import EvalOptions
from nas_llv.atomic import atomic_write, write_text
from nas_llv.metrics.image import METRICS
from nas_llv.tiles import Tiler
from nas_llv.metrics import LPIPSMetric, count_flops, count_params, gt_mean_correct, latency, psnr, quantize, rmse, ssim

if TYPE_CHECKING:
    from nas_llv.inference.engine import Prepared

log = logging.getLogger(__name__)

def open_pairs(root: str | Path, scale: int = 1, split: str = "test") -> PairedFolder | LowLightSRFolder:
    """``root/low`` + ``root/high`` (high ``scale`` x low), a LOL root (its ``eval15`` split, scale 1),
    or a RELLISUR-style root (its ``split`` at x``scale``, layouts in ``nas_llv.data.rellisur``)."""
    root = Path(root)
    if (root / "low").is_dir() and (root / "high").is_dir():
        return PairedFolder(root, scale=scale)
    if (root / "eval15").is_dir():
        if scale != 1:
            raise ConfigError(f"{root}: LOL pairs are the same size, but the model super-resolves x{scale}; "
                              f"evaluate it on low-light SR pairs (low/ + high/ at x{scale}, or RELLISUR)")
        return lol(root, "eval")
    if split not in SPLIT_DIRS:
        raise ConfigError(f"split '{split}' is not allowed; allowed: {', '.join(SPLIT_DIRS)}")
    try:
        find_sr_folders(root, split, scale)
    except ConfigError:
        raise ConfigError(f"{root}: expected paired folders {root}/low and {root}/high (same file names, high "
                          f"{scale}x low), a LOL root holding eval15/low and eval15/high, or a RELLISUR root "
                          f"(<root>/{split.capitalize()}/LLLR + <root>/{split.capitalize()}/NLHR/X{scale}, "
                          f"or <root>[/{split}]/lr_x{scale} + hr)") from None
    return LowLightSRFolder(root, split, scale)


def image_metrics(x: torch.Tensor, gt: torch.Tensor, quant: str = "round", gt_mean: bool = False,
                  lpips: LPIPSMetric | None = None) -> dict[str, torch.Tensor | None]:
    """x: (N, 3, H, W) network output (any range), gt: (N, 3, H, W) in [0, 1] -> each metric per
    image, (N,) float64 ('lpips' None without a model); for a super-resolution network H, W are
    the output's, i.e. the HR ground truth's size."""
    out = quantize(x.detach().double(), quant)  # quantize clips to [0, 1]
    gt = gt.double()
    if gt_mean:
        out = gt_mean_correct(out, gt, grey="bt601")
    return {
        "psnr": psnr(out, gt),
        "ssim": ssim(out, gt),
        "lpips": None if lpips is None else lpips(out.float(), gt.float()),
        "rmse": rmse(out, gt),
    }


def evaluate_images(net: nn.Module, pairs: PairedFolder | LowLightSRFolder, device: torch.device,
                    output: str = "x", quant: str = "round", gt_mean: bool = False,
                    lpips: LPIPSMetric | None = None, progress: bool = True,
                    tile: int | None = None) -> list[dict[str, Any]]:
    """One row per pair: ``{"name", "psnr", "ssim", "lpips", "rmse"}`` (lpips None when unavailable).
    The output must be the ground truth's size (``pairs`` checks high = scale x low). An image too
    large for memory runs in tiles (``tile``, nas_llv.tiles)."""
    net = net.to(device).eval()
    tiler = Tiler(lambda y: enhance_tensor(net, y, output), tile)
    rows = []
    for i in tqdm(range(len(pairs)), desc="eval", unit="img", disable=None if progress else True):  # terminal only
        item = pairs[i]
        x = tiler(item["low"][None].to(device))
        if x.shape[-2:] != item["high"].shape[-2:]:
            raise ConfigError(f"{item['name']}: output '{output}' is {tuple(x.shape[-2:])} for input "
                              f"{tuple(item['low'].shape[-2:])}, but its ground truth is "
                              f"{tuple(item['high'].shape[-2:])}")
        metrics = image_metrics(x.cpu(), item["high"][None], quant, gt_mean, lpips)
        rows.append({"name": item["name"], **{k: None if v is None else float(v[0]) for k, v in metrics.items()}})
    return rows


def model_cost(net: nn.Module | None, sample: torch.Tensor, device: torch.device, repeats: int = 10,
               warmup: int = 2, timed: nn.Module | None = None) -> dict[str, Any]:
    """Params, FLOPs (torch flop counter: 2 per multiply-add) and median latency at ``sample``'s size.

    sample: (3, H, W) in [0, 1], the network's input (the LR image of a super-resolution network).
    ``timed``: the network whose latency is measured, where it is not ``net`` itself (an inference
    engine's folded copy); params and FLOPs are always ``net``'s, the architecture's (None when
    there is no torch network: an engine running an ONNX file).
    """
    x = sample[None].to(device)
    lat = latency(net if timed is None else timed, x, repeats=repeats, warmup=warmup, device=device)
    return {
        "params": None if net is None else count_params(net),
        "flops": None if net is None else count_flops(net.to(device), x),
        "resolution": f"{x.shape[-1]}x{x.shape[-2]}",
        "latency_s": lat["median_s"],
        "latency_min_s": lat["min_s"],
        "repeats": repeats,
        "warmup": warmup,
        "device": str(device),
        "device_name": lat["device_name"],
    }


def mean_row(rows: list[dict[str, Any]], columns: Sequence[str] = METRICS) -> dict[str, float | None]:
    """Mean of each metric over images (None when any image lacks it, e.g. LPIPS without weights)."""
    out: dict[str, float | None] = {}
    for key in columns:
        values = [r[key] for r in rows]
        out[key] = None if not values or any(v is None for v in values) else math.fsum(values) / len(values)
    return out


def write_metrics_csv(path: str | Path, rows: list[dict[str, Any]], columns: Sequence[str] = METRICS) -> Path:
    """One row per image; an absent metric is an empty cell."""
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["name", *columns])
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r[k] is None else r[k]) for k in ("name", *columns)})
    return atomic_write(path, write)


def write_summary(path: str | Path, summary: dict[str, Any]) -> Path:
    """Strict JSON: a NaN or infinite number is written as null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in summary.items()}
    return write_text(path, json.dumps(clean, indent=2, allow_nan=False) + "\n")


def build_summary(rows: list[dict[str, Any]], cost: dict[str, Any], rules: dict[str, Any],
                  source: dict[str, Any], columns: Sequence[str] = METRICS) -> dict[str, Any]:
    """The flat record ``summary.json`` holds (one pandas row per evaluation)."""
    return {**source, "images": len(rows), **mean_row(rows, columns), **cost, **rules, "nas_llv": __version__}


def write_results(out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any],
                  columns: Sequence[str] = METRICS) -> None:
    """``out_dir``/metrics.csv, then summary.json (its presence means the evaluation ended): both or neither."""
    sweep_own_temp_files([out_dir / "metrics.csv", out_dir / "summary.json"])
    metrics_csv = write_metrics_csv(out_dir / "metrics.csv", rows, columns)
    try:
        write_summary(out_dir / "summary.json", summary)
    except BaseException:  # both files or neither: a metrics.csv alone would pass for a finished evaluation
        metrics_csv.unlink(missing_ok=True)
        raise


def evaluation_source(model: Prepared, data: str | Path) -> dict[str, Any]:
    """What was scored: the model file and the data folder."""
    return {"model": str(model.source.resolve()), "data": str(Path(data).resolve()),
            "data_name": Path(data).resolve().name}


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file's header, or None when unreadable (reading it reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # PIL raises many types; reading the image later reports the reason
        return None


def check_sizes(pairs: PairedFolder | LowLightSRFolder, min_size: int, needs: str) -> None:
    """Every ground truth (the size metrics see) at least ``min_size`` px high and wide."""
    for _, high in pairs.pairs:
        size = image_size(high)
        if size is not None and min(size) < min_size:
            raise ConfigError(f"{high}: the ground truth is {size[0]}x{size[1]}, smaller than {needs} needs "
                              f"(at least {min_size}x{min_size})")


def metric_needs(lpips: LPIPSMetric | None) -> tuple[int, str]:
    """The least image side the metrics take, and which metric sets it."""
    from nas_llv.metrics.image import SSIM_WIN_SIZE

    if lpips is not None and lpips.available and lpips.min_size > SSIM_WIN_SIZE:
        return lpips.min_size, f"LPIPS ({lpips.net}; use --lpips-net none to skip it)"
    return SSIM_WIN_SIZE, f"SSIM ({SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} window)"


def evaluate_model(model: Prepared, data: str | Path, options: EvalOptions,
                   out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score a model an engine prepared on ``data``'s pairs; write ``out_dir``/metrics.csv and
    summary.json (the latter last: its presence means the evaluation ended). Returns the per-image
    rows and the summary record. Params and FLOPs are the network's (None for an engine that runs
    a file with no torch network), the latency the engine's. Images without ground truth:
    ``nas_llv.evaluation.unpaired``."""
    options.check()
    pairs = open_pairs(data, model.scale, options.split)
    from nas_llv import metrics  # looked up here, so a test can stand a random-backbone LPIPS in

    lpips = None if options.lpips_net == "none" else metrics.LPIPSMetric(options.lpips_net, device=model.device)
    check_sizes(pairs, *metric_needs(lpips))
    scored = lpips if lpips is not None and lpips.available else None
    rows = evaluate_images(model.runner, pairs, model.device, options.output, options.quantize, options.gt_mean,
                           scored, progress=options.progress, tile=options.tile)
    # at the (LR) input size; params and FLOPs are the network's, the latency the engine's
    cost = model_cost(model.network, pairs[0]["low"], model.device, options.repeats, options.warmup,
                      timed=model.runner)
    rules = {"quantize": options.quantize, "data_range": 1.0, "gt_mean": options.gt_mean, "output": options.output,
             "lpips_net": None if scored is None else options.lpips_net, "scale": model.scale,
             "engine": options.engine}
    summary = build_summary(rows, cost, rules, evaluation_source(model, data))
    write_results(out_dir, rows, summary)
    return rows, summary
