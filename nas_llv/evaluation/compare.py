"""Put several evaluations side by side: one row per ``summary.json`` (as ``nas-llv eval`` writes).

The same records load into pandas with ``pd.DataFrame(load_summaries(paths))``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from nas_llv.config import ConfigError, read_text
from nas_llv.layout import EVAL_PREFIX, RunLayout

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
# fields the table does arithmetic on: each must be a number (or absent / null)
NUMBERS = ("psnr", "ssim", "lpips", "rmse", "niqe", "brisque", "noise", "params", "flops", "latency_s")
# no-reference (lower is better): shown when present
NOREF_COLUMNS = {"NIQE": "niqe", "BRISQUE": "brisque", "noise (levels)": "noise"}
# Rules that make two evaluations comparable; a difference is worth a warning.
RULES = ("data", "quantize", "gt_mean", "data_range", "output")


def _fmt(digits: int) -> Callable[[Any], str]:
    return lambda v: "" if v is None else f"{v:.{digits}f}"


# column title -> how to render it from a summary record
COLUMNS: dict[str, Callable[[dict[str, Any]], str]] = {
    "model": lambda s: s["label"],
    "data": lambda s: _data_cell(s),
    "PSNR (dB)": lambda s: _fmt(3)(s.get("psnr")),
    "SSIM": lambda s: _fmt(4)(s.get("ssim")),
    "LPIPS": lambda s: _fmt(4)(s.get("lpips")),
    "RMSE": lambda s: _fmt(4)(s.get("rmse")),
    "NIQE": lambda s: _fmt(3)(s.get("niqe")),
    "BRISQUE": lambda s: _fmt(3)(s.get("brisque")),
    "noise (levels)": lambda s: _fmt(3)(s.get("noise")),
    "params": lambda s: "" if s.get("params") is None else f"{s['params']:,}",
    "GFLOPs": lambda s: "" if s.get("flops") is None else f"{s['flops'] / 1e9:.3f} @ {s.get('resolution', '?')}",
    "latency (ms)": lambda s: "" if s.get("latency_s") is None else f"{1e3 * s['latency_s']:.1f}",
    "device": lambda s: f"{s.get('device', '')} ({s.get('device_name', '')})",
}


def _data_cell(s: dict[str, Any]) -> str:
    """The data's name, with the rules that depart from the defaults."""
    notes = []
    if s.get("gt_mean"):
        notes.append("GT-mean")
    if s.get("quantize", "round") != "round":
        notes.append(str(s["quantize"]))
    if s.get("output", "x") != "x":
        notes.append(f"output {s['output']}")
    return f"{s.get('data_name', '')}" + (f" ({', '.join(notes)})" if notes else "")


def find_summaries(target: str | Path) -> list[Path]:
    """``summary.json`` itself, a folder holding one, or a run folder with ``eval-*/summary.json``."""
    path = Path(target)
    if path.is_file():
        return [path]
    if (path / SUMMARY).is_file():
        return [path / SUMMARY]
    found = [d / SUMMARY for d in RunLayout(path).eval_dirs() if (d / SUMMARY).is_file()] if path.is_dir() else []
    if not found:
        raise ConfigError(f"{target}: no {SUMMARY} here (nor in {target}/{EVAL_PREFIX}*/); run `nas-llv eval` first")
    return found


def label_of(path: Path) -> str:
    """'run/eval-mit5' for a run's eval folder, else the folder's name."""
    # absolute (with '..' folded, links kept): 'eval-mit5/summary.json' names no parent as given
    folder = Path(os.path.abspath(path)).parent
    return f"{folder.parent.name}/{folder.name}" if folder.name.startswith(EVAL_PREFIX) else folder.name


def load_summaries(targets: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Every summary found under ``targets``, each with a ``label`` and its ``summary_path``."""
    records = []
    for target in targets:
        for path in find_summaries(target):
            try:
                data = json.loads(read_text(path, "JSON"))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc})") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a JSON object as `nas-llv eval` writes")
            _check_numbers(data, path)
            records.append({"label": label_of(path), "summary_path": str(path), **data})
    _warn_mixed_rules(records)
    return records


def _check_numbers(data: dict[str, Any], path: Path) -> None:
    for key in NUMBERS:
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{path}: '{key}' is {value!r}; expected a number or null, as `nas-llv eval` writes")


def _warn_mixed_rules(records: list[dict[str, Any]]) -> None:
    for key in RULES:
        values = {json.dumps(r.get(key)) for r in records}
        if len(values) > 1:
            log.warning("the evaluations differ in '%s' (%s): their numbers are not directly comparable",
                        key, ", ".join(sorted(values)))


def markdown_table(records: list[dict[str, Any]]) -> str:
    """A GitHub-flavoured Markdown table, one row per evaluation; the no-reference columns only
    where some evaluation had images without ground truth."""
    head = [c for c in COLUMNS if c not in NOREF_COLUMNS or any(r.get(NOREF_COLUMNS[c]) is not None for r in records)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in records:
        lines.append("| " + " | ".join(COLUMNS[c](r).replace("|", "\\|") for c in head) + " |")
    return "\n".join(lines) + "\n"
