"""``write_report``: one static, self-contained HTML page for a run folder or a sweep folder."""
from __future__ import annotations

import logging
from pathlib import Path

from nas_llv.atomic import write_text
from nas_llv.config import ConfigError
from nas_llv.report import html
from nas_llv.report.charts import pick_backend, renderer
from nas_llv.report.run import is_run, run_sections
from nas_llv.report.samples import evaluation_section, is_evaluation
from nas_llv.report.sweep import sweep_sections
from nas_llv.sweep import is_sweep

log = logging.getLogger(__name__)

REPORT = "report.html"


def write_report(target: str | Path, out: str | Path | None = None, samples: int = 3, plots: str = "auto") -> Path:
    """Write the report of ``target`` (a run, sweep or ``eval -o`` folder) to ``out`` (default
    ``TARGET/report.html``) atomically, and return its path.

    ``samples``: how many evaluated images each evaluation shows before and after (0: none; the
    model runs on them, on the CPU). ``plots``: ``auto`` (plotly where installed, interactive,
    its script inlined; else matplotlib PNGs), ``plotly`` or ``matplotlib``. A folder that is
    neither kind raises ``ConfigError``.
    """
    target = Path(target)
    if samples < 0:
        raise ConfigError(f"samples={samples}: expected a number of images >= 0")
    draw = renderer(pick_backend(plots))
    if not target.is_dir():
        raise ConfigError(f"{target}: no such run or sweep folder")
    if is_sweep(target):
        title, body = f"sweep {target.resolve().name}", sweep_sections(target, draw)
    elif is_run(target):
        title, body = f"run {target.resolve().name}", run_sections(target, draw, samples)
    elif is_evaluation(target):  # eval -o DIR's folder
        title, body = f"evaluation {target.resolve().name}", [evaluation_section(target, samples)]
    else:
        raise ConfigError(f"{target}: not a run folder (no config.yaml or trajectory.csv), a sweep folder "
                          "(no sweep.yaml) nor an evaluation (no summary.json and metrics.csv)")
    out = Path(out) if out is not None else target / REPORT
    if out.is_dir():
        raise ConfigError(f"-o {out}: is a folder; give the report's file name, e.g. {out / REPORT}")
    log.debug("report of %s with %s plots", target, draw.backend)
    return write_text(out, html.page(title, body, draw.head()))
