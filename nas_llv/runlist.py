"""Run folders listed, one row each (``nas-llv runs``): name, kind, status, steps, key metric and
genotype hash, in the order the runs started. A folder that cannot be read is a row saying so,
never an error; nothing here imports torch."""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_llv.config import ConfigError, load_yaml
from nas_llv.runview import RunFolder, last_step, read_wide, run_kind, run_status
from nas_llv.sweep import PLAN, RETRAIN, is_sweep, read_plan

if TYPE_CHECKING:
    import pandas as pd

STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")  # Run.create's <name>-<YYYYmmdd-HHMMSS>[-n]
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class RunRow:
    """One listed folder; ``steps``, ``metric`` and ``genotype`` are None where they do not apply."""

    name: str
    path: str
    kind: str  # search, train, sweep, eval; '-' when unreadable
    status: str
    steps: int | None
    metric: str | None
    genotype: str | None  # genotype hash (nas_llv.sweep.genotype_hash)
    started: str  # ISO time: the folder name's stamp, else the folder's modification time
    problem: str | None = None  # why an 'unreadable' folder could not be read


def list_runs(root: str | Path) -> list[RunRow]:
    """A row per folder directly under ``root`` (hidden ones aside), oldest first; ``root`` may be
    one run folder, or a sweep folder (its trials and their retraining runs)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder")
    if RunFolder(root).config_path.is_file():
        folders = [root]
    else:
        folders = _subfolders(root) + (_subfolders(root / RETRAIN) if is_sweep(root) else [])
    return sorted((read_row(f) for f in folders), key=lambda r: (r.started, r.name))


def _subfolders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]


def read_row(folder: Path) -> RunRow:
    """``folder``'s row; one whose files cannot be read says why in its status."""
    try:
        kind, status, steps, metric, genotype = _describe(folder)
    except Exception as exc:  # noqa: BLE001 - a torn or foreign folder is a row, not a traceback
        return RunRow(folder.name, str(folder), "-", UNREADABLE, None, None, None, _started(folder), _reason(exc))
    return RunRow(folder.name, str(folder), kind, status, steps, metric, genotype, _started(folder))


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {text}".rstrip(": ")


def _describe(folder: Path) -> tuple[str, str, int | None, str | None, str | None]:
    if (folder / PLAN).is_file():
        return _sweep(folder)
    if RunFolder(folder).config_path.is_file():
        load_yaml(RunFolder(folder).config_path)  # a torn or foreign config is unreadable, not a run
        wide = read_wide(folder)
        kind = run_kind(folder, wide)
        metric = _search_metric(folder, wide) if kind == "search" else _train_metric(wide)
        return kind, run_status(folder, wide), last_step(wide), metric, RunFolder(folder).genotype_hash
    if (folder / "summary.json").is_file():
        return _evaluation(folder)
    raise ConfigError("not a run folder (no config.yaml, sweep.yaml or eval summary.json)")


def _search_metric(folder: Path, wide: pd.DataFrame | None) -> str | None:
    """The validation loss the genotype scored (its meta), else the last step's."""
    path = RunFolder(folder).genotype_path
    scored = (load_yaml(path).get("meta") or {}).get("val_loss") if path.is_file() else None
    if isinstance(scored, (int, float)):
        return f"val loss {scored:.5g}"
    last = _column(wide, "val_loss")
    return None if last is None else f"val loss {last.iloc[-1]:.5g} (step {int(last.index[-1])})"


def _train_metric(wide: pd.DataFrame | None) -> str | None:
    """The last validation PSNR and the best (else the validation loss, lowest best). Step 0 is
    the untrained network: it counts as best only when nothing else was validated, as
    ``model_best.pt`` never holds it (docs/training.md)."""
    for column, unit, best_of in (("metric/psnr", " dB", max), ("val_loss", "", min)):
        values = _column(wide, column)
        if values is not None:
            trained = values[values.index > 0]
            best = best_of((trained if len(trained) else values).items(), key=lambda kv: kv[1])
            name = "PSNR" if unit else "val loss"
            return f"{name} {values.iloc[-1]:.4g}{unit} (best {best[1]:.4g} at step {int(best[0])})"
    return None


def _column(wide: pd.DataFrame | None, name: str) -> pd.Series | None:
    """``name``'s recorded values indexed by step (the last record of a step), or None."""
    if wide is None or name not in wide.columns:
        return None
    values = wide[["step", name]].dropna().drop_duplicates("step", keep="last").set_index("step")[name]
    return values.astype(float) if len(values) else None


def _sweep(folder: Path) -> tuple[str, str, int | None, str | None, str | None]:
    """A sweep: its trials finished, its best trial's score and genotype (summary.csv)."""
    trials = len(read_plan(folder)["trials"])
    rows = []
    if (folder / "summary.csv").is_file():
        with (folder / "summary.csv").open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    done = sum(r.get("status") == "finished" for r in rows)
    status = "finished" if trials and done == trials else f"{done} of {trials} trials finished"
    metric, genotype = None, None
    for column, best_of, shown in (("psnr", max, "best PSNR {:.4g} dB"), ("val_loss", min, "best val loss {:.5g}")):
        scored = [(float(r[column]), r) for r in rows if _number(r.get(column))]
        if scored:
            value, row = best_of(scored, key=lambda vr: vr[0])
            metric, genotype = f"{shown.format(value)} (trial {row.get('trial')})", row.get("genotype_hash") or None
            break
    return "sweep", status, None, metric, genotype


def _number(text: Any) -> bool:
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False


EVAL_SCORES = (("psnr", "PSNR", " dB"), ("ssim", "SSIM", ""), ("niqe", "NIQE", ""), ("brisque", "BRISQUE", ""))


def _evaluation(folder: Path) -> tuple[str, str, int | None, str | None, str | None]:
    """A folder ``eval -o`` wrote: its PSNR and SSIM over its images (NIQE and BRISQUE without
    ground truth)."""
    record = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    if not isinstance(record, dict):
        raise ConfigError("summary.json: not an evaluation record")
    scores = [f"{name} {record[key]:.4g}{unit}" for key, name, unit in EVAL_SCORES
              if isinstance(record.get(key), (int, float))]
    images = record.get("images")
    metric = ", ".join(scores) + (f" ({images} images)" if isinstance(images, int) else "") if scores else None
    return "eval", "finished", None, metric, None


def _started(folder: Path) -> str:
    found = STAMP.search(folder.name)
    if found:
        return datetime.strptime(found.group(1), "%Y%m%d-%H%M%S").isoformat()
    try:
        return datetime.fromtimestamp(folder.stat().st_mtime).isoformat(timespec="seconds")
    except OSError:
        return ""


def table_lines(rows: list[RunRow]) -> list[str]:
    """The rows as aligned text columns under a header (an empty cell: '-'); an unreadable
    folder's line ends with why, in place of its steps, metric and genotype."""
    header = ("name", "kind", "status", "steps", "metric", "genotype")
    cells = [header] + [(r.name, r.kind, r.status, "-" if r.steps is None else str(r.steps),
                         r.metric or "-", r.genotype or "-") for r in rows]
    readable = [c for c, r in zip(cells, [None, *rows]) if r is None or r.problem is None]
    widths = [max(len(c[i]) for c in (readable if i > 2 else cells)) for i in range(len(header))]

    def line(cell: tuple[str, ...], row: RunRow | None) -> str:
        shown = [c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cell, widths))]
        return "  ".join(shown[:3] + ([row.problem] if row is not None and row.problem else shown[3:])).rstrip()
    return [line(c, r) for c, r in zip(cells, [None, *rows])]
