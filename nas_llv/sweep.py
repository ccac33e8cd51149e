"""Sweeps: the same recipe over several seeds and a grid of settings, one run folder per trial.

A sweep folder ``<output>/<recipe name>-sweep-<YYYYmmdd-HHMMSS>/`` holds::

    sweep.yaml                       the plan: seeds, grid, and every trial's resolved recipe(s)
    summary.csv, summary.md          one row per trial, rewritten (atomically) as trials finish
    <name>-t00-seed0-<time>/         trial 0's search run folder (an ordinary run, docs/runs.md)
    retrain/<train name>-t00-seed0-<time>/   its retraining run, with eval-<data>/ (with --eval)

This module plans and records a sweep (seeds, grid, folder, summary); ``nas_llv.pipeline.trials``
runs the trials on Ray. Grid values and overrides are parsed by ``yaml.safe_load``, as recipe
overrides are.
"""
from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas_llv.config import ConfigError, load_yaml, override_value
from nas_llv.atomic import atomic_write, write_text, write_yaml
from nas_llv.layout import RunLayout

INSTALL = "pip install -e '.[ray]'"  # sweeps run their trials on Ray
SEEDS_DEFAULT = "0"
OVER_LIMIT = "over cost limit"  # a searched trial --max-gflops kept from retraining and evaluation
PLAN = "sweep.yaml"
RETRAIN = "retrain"
# the summary's columns after the grid's: measured by each trial (None: not measured)
RESULT_COLUMNS = ("status", "val_loss", "genotype_hash", "params", "flops", "train_run", "psnr", "ssim", "lpips")


@dataclass(frozen=True)
class Trial:
    """One point of the sweep: a seed and one value per grid key; ``overrides`` make its recipe."""

    index: int
    seed: int
    grid: dict[str, Any] = field(default_factory=dict)
    grid_text: dict[str, str] = field(default_factory=dict)  # the values as typed, for the overrides

    def name(self, base: str) -> str:
        """The run name (its folder is ``<name>-<time>``): ``ruas_demo-t03-seed2``."""
        return f"{base}-t{self.index:02d}-seed{self.seed}"

    def overrides(self) -> list[str]:
        return [f"seed={self.seed}", *(f"{k}={v}" for k, v in self.grid_text.items())]


def parse_seeds(text: str) -> list[int]:
    """``0-3`` -> [0, 1, 2, 3]; ``0,2,5`` -> [0, 2, 5]; ranges and lists mix (``0-2,7``)."""
    seeds: list[int] = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ConfigError(f"--seeds {text}: expected seeds >= 0 as a range or a list, e.g. 0-7 or 0,2,5")
        lo = int(m.group(1))
        seeds.extend(range(lo, int(m.group(2) or lo) + 1))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text}: a seed is given twice")
    return seeds


def split_values(text: str) -> list[str]:
    """Split at the commas outside brackets and quotes: ``0.5,[1, 2],'a,b'`` -> 3 values."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def parse_grid(items: Sequence[str]) -> list[tuple[str, list[tuple[str, Any]]]]:
    """``["search.beta=0.5,1,2"]`` -> [("search.beta", [("0.5", 0.5), ("1", 1), ("2", 2)])]."""
    grid: list[tuple[str, list[tuple[str, Any]]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        values = [v.strip() for v in split_values(raw)] if sep else []
        if not key or not sep or not all(values):
            raise ConfigError(f"--grid {item}: expected KEY=V1,V2,... e.g. search.beta=0.5,1,2")
        if key in ("seed", "name") or key in (k for k, _ in grid):
            raise ConfigError(f"--grid {item}: {key} is " + ("set by the sweep (use --seeds)" if key in ("seed", "name")
                                                              else "given twice; list all its values in one --grid"))
        grid.append((key, [(v, override_value(f"{key}={v}", v)) for v in values]))
    return grid


def plan_trials(seeds: Sequence[int], grid: Sequence[tuple[str, list[tuple[str, Any]]]]) -> list[Trial]:
    """Every grid point (the cartesian product of the keys' values) with every seed, seed fastest."""
    keys = [k for k, _ in grid]
    points = itertools.product(*(values for _, values in grid))
    return [Trial(i, seed, {k: v for k, (_, v) in zip(keys, point)}, {k: t for k, (t, _) in zip(keys, point)})
            for i, (point, seed) in enumerate(itertools.product(points, seeds))]


def make_sweep_dir(root: str | Path, name: str) -> Path:
    """A new folder ``root/<name>-sweep-<timestamp>`` (``-2``, ``-3``... when taken)."""
    base = Path(root) / f"{name}-sweep-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count(1):
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def write_plan(sweep_dir: Path, plan: Mapping[str, Any]) -> Path:
    return write_yaml(sweep_dir / PLAN, dict(plan))


def read_plan(sweep_dir: str | Path) -> dict[str, Any]:
    """The ``sweep.yaml`` of a sweep folder, with one line when it is not one."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir}: no such sweep folder")
    if not (sweep_dir / PLAN).is_file():
        raise ConfigError(f"{sweep_dir}: not a sweep folder ({PLAN} is missing)")
    plan = load_yaml(sweep_dir / PLAN)
    if not isinstance(plan.get("trials"), list):
        raise ConfigError(f"{sweep_dir / PLAN}: no trials list; was it written by nas-llv sweep?")
    return plan


def is_sweep(path: str | Path) -> bool:
    return (Path(path) / PLAN).is_file()


def trial_dict(trial: Trial, base: str) -> dict[str, Any]:
    return {"index": trial.index, "name": trial.name(base), "seed": trial.seed, "grid": dict(trial.grid),
            "grid_text": dict(trial.grid_text)}


def find_run(parent: Path, name: str) -> Path | None:
    """The latest run folder ``parent/<name>-<timestamp>[-n]``, or None."""
    runs = sorted(p for p in parent.glob(f"{glob_escape(name)}-2*") if p.is_dir() and RunLayout(p).config_path.is_file())
    return runs[-1] if runs else None


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def sweep_runs(sweep_dir: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each started trial's search run folder and its sweep columns (trial, seed, grid values)."""
    sweep_dir = Path(sweep_dir)
    out = []
    for data in read_plan(sweep_dir)["trials"]:
        run = find_run(sweep_dir, data["name"])
        if run is not None:
            out.append((run, {"trial": int(data["index"]), "seed": int(data["seed"]), **(data.get("grid") or {})}))
    return out


def genotype_hash(choices: Mapping[str, str]) -> str:
    """12 hex digits of SHA-256 over the sorted ``{label: op}`` choices: equal genotypes, equal hashes."""
    text = json.dumps(dict(sorted(choices.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- the summary -------------------------------------------------------------------------------

def summary_columns(grid_keys: Sequence[str]) -> list[str]:
    return ["trial", "run", "seed", *grid_keys, *RESULT_COLUMNS]


def write_summary(sweep_dir: Path, grid_keys: Sequence[str], rows: Sequence[Mapping[str, Any]],
                  note: str = "") -> None:
    """``summary.csv`` and ``summary.md``: one row per trial, in trial order; each written atomically."""
    columns = summary_columns(grid_keys)
    rows = sorted(rows, key=lambda r: r["trial"])

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, columns, restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)

    atomic_write(sweep_dir / "summary.csv", write_csv)
    lines = [f"# Sweep {sweep_dir.name}", "", *([note, ""] if note else []),
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_md_cell(r.get(c), c in RESULT_COLUMNS) for c in columns) + " |" for r in rows]
    write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")


def _md_cell(value: Any, measured: bool) -> str:
    """A result rounded for reading; a seed or grid value as given."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and measured:
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool) and measured and value >= 10**4:
        return f"{value:,}"
    return str(value).replace("|", "\\|")
