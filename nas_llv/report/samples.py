"""A run's evaluations in the report: each ``<eval folder>/summary.json`` with its per-image
``metrics.csv`` (``nas-llv eval``, docs/evaluation.md), and a few of the evaluated images before
and after: the input, the evaluated model's output (run again here, on the CPU) and the ground
truth, as small JPEGs."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pandas as pd

from nas_llv.config import ConfigError
from nas_llv.report import html
from nas_llv.report.charts import image_tag

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("data", "images", "psnr", "ssim", "lpips", "rmse", "niqe", "brisque", "brightness", "noise",
                "input_niqe", "input_brisque", "input_brightness", "input_noise", "params", "flops", "resolution",
                "latency_s", "device_name", "engine", "output", "quantize", "gt_mean")
SAMPLE_PIXELS = 4_000_000  # a larger image is left out of the samples (eval runs it in tiles; a preview need not)
THUMB_WIDTH = 600  # pixels of a sample as embedded (shown at half that)


def eval_folders(folder: Path) -> list[Path]:
    """The folders directly in ``folder`` that ``nas-llv eval`` wrote (summary.json + metrics.csv)."""
    return sorted(p.parent for p in folder.glob("*/summary.json") if is_evaluation(p.parent))


def is_evaluation(folder: Path) -> bool:
    return (folder / "summary.json").is_file() and (folder / "metrics.csv").is_file()


def evaluation_sections(folder: Path, samples: int = 3) -> list[str]:
    """One section per evaluation in ``folder`` (``evaluation_section``)."""
    return [evaluation_section(ev, samples) for ev in eval_folders(folder)]


def evaluation_section(ev: Path, samples: int = 3) -> str:
    """An evaluation folder's means and costs, each image's scores, and ``samples`` images."""
    record = json.loads((ev / "summary.json").read_text())
    metrics = pd.read_csv(ev / "metrics.csv", dtype={"name": str})
    shown = {k: record[k] for k in SUMMARY_KEYS if record.get(k) is not None}
    return html.section(f"evaluation: {ev.name}", html.key_values(shown), html.table(metrics),
                        sample_strip(record, metrics.head(samples)) if samples else "")


def sample_strip(record: dict, rows: pd.DataFrame) -> str:
    """Input, output and ground truth of the images of ``rows`` (metrics.csv's); a note instead
    where the model or the images are no longer where the evaluation found them."""
    model, data = Path(str(record.get("model", ""))), Path(str(record.get("data", "")))
    if model.suffix != ".pt" or not model.is_file() or not data.is_dir():
        return html.note(f"no samples: the evaluated model ({model}) or its data ({data}) is not here "
                         "(samples are drawn with a model file's .pt)")
    try:
        return '<div class="samples">' + "".join(_figures(model, data, rows, record)) + "</div>"
    except ConfigError as exc:  # an image gone or unreadable since the evaluation
        log.warning("report: no samples for %s: %s", record.get("data_name", data), exc)
        return html.note(f"no samples: {exc}")


def _figures(model: Path, data: Path, rows: pd.DataFrame, record: dict) -> list[str]:
    import torch

    from nas_llv.data import read_image
    from nas_llv.enhance import enhance_tensor
    from nas_llv.export.modelfile import load_model

    files = _files(data)
    net = load_model(model)[0].eval()
    figures = []
    for _, scores in rows.iterrows():
        name = str(scores["name"])
        if name not in files:
            raise ConfigError(f"{data}: no image named {name} (metrics.csv names it)")
        low, high = files[name]
        y = read_image(low, max_pixels=SAMPLE_PIXELS)
        with torch.inference_mode():
            x = enhance_tensor(net, y[None], str(record.get("output", "x")))[0]
        row = [("input", y), (f"output, {_scores(scores)}", x)]
        if high is not None:
            row.append(("ground truth", read_image(high, max_pixels=None)))
        figures += [f"<figure>{image_tag(_jpeg(img), f'{name} {what}', mime='image/jpeg')}"
                    f"<figcaption>{html.escape(name)}: {html.escape(what)}</figcaption></figure>"
                    for what, img in row]
    return figures


def _files(data: Path) -> dict[str, tuple[Path, Path | None]]:
    """Image name (its stem, as metrics.csv names it) -> (low, high or None) of ``data``: pairs in
    ``low/`` and ``high/``, or the images without ground truth that eval found (``open_unpaired``)."""
    from nas_llv.data.folders import match_pairs
    from nas_llv.evaluation.unpaired import open_unpaired

    unpaired = open_unpaired(data)
    if unpaired is not None:
        return {low.stem: (low, None) for low in unpaired.files}
    return {low.stem: (low, high) for low, high in match_pairs(data / "low", data / "high")}


def _scores(scores: pd.Series) -> str:
    """'psnr 19.20, ssim 0.810' from a metrics.csv row (its measured columns, whichever they are)."""
    return ", ".join(f"{k} {float(v):.3f}" for k, v in scores.items() if k != "name" and pd.notna(v))


def _jpeg(x: object) -> bytes:
    """(3, H, W) in [0, 1] -> a JPEG at most ``THUMB_WIDTH`` wide."""
    from PIL import Image

    from nas_llv.data.io import to_uint8

    img = Image.fromarray(to_uint8(x))  # type: ignore[arg-type]
    if img.width > THUMB_WIDTH:
        img = img.resize((THUMB_WIDTH, max(1, round(img.height * THUMB_WIDTH / img.width))), Image.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", quality=90, subsampling=0)  # 4:4:4: colours as they are
    return buffer.getvalue()
