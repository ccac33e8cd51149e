"""The sections of a sweep folder's report (``nas-llv sweep``, nas_llv/sweep.py): the plan, the
summary (one row per trial: status, validation loss, genotype hash, size, scores), each trial's
final genotype, and the trials' trajectories overlaid."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas_llv.report import html
from nas_llv.report.charts import Chart, PlotlyRenderer, PngRenderer, charts_html
from nas_llv.report.trajectory import series_of
from nas_llv.results import is_finished, load_trajectory_wide
from nas_llv.runview import RunFolder
from nas_llv.sweep import read_plan, sweep_runs

OVERLAID = (("val_loss", "validation loss"), ("train_loss", "training loss"),
            ("hessian/eigenvalue", "Hessian: dominant eigenvalue of ∇²α"), ("cost/expected", "expected cost"))


def sweep_sections(folder: Path, draw: PlotlyRenderer | PngRenderer) -> list[str]:
    plan = read_plan(folder)
    facts = {"folder": folder.resolve(), "trials": len(plan["trials"]),
             **{k: plan[k] for k in ("seeds", "grid") if k in plan}}
    out = [html.section("sweep", html.key_values(facts))]
    if (folder / "summary.csv").is_file():
        out.append(html.section("summary (summary.csv)", html.table(pd.read_csv(folder / "summary.csv"))))
    trials = [(run, cols, load_trajectory_wide(run)) for run, cols in sweep_runs(folder)
              if RunFolder(run).trajectory_path.is_file()]
    if not trials:
        return [*out, html.note("no trial has taken a step yet")]
    out.append(html.section("final genotype of each trial", html.table(genotypes(trials))))
    charts = [Chart(title, column, tuple(s for run, cols, wide in trials if column in wide.columns
                                         for s in series_of(wide, column, f"t{cols['trial']:02d}")))
              for column, title in OVERLAID]
    out.append(html.section("trajectories, trials overlaid", charts_html([c for c in charts if c.series], draw)))
    return out


def genotypes(trials: list[tuple[Path, dict, pd.DataFrame]]) -> pd.DataFrame:
    """One row per trial: its sweep columns, finished or not, last validation loss, genotype hash
    and one column per label with the op chosen (empty until the trial's search ends)."""
    rows = []
    for run, cols, wide in trials:
        view = RunFolder(run)
        last = wide["val_loss"].dropna() if "val_loss" in wide.columns else pd.Series(dtype=float)
        rows.append({**cols, "run": run.name, "finished": is_finished(run, wide),
                     "val_loss": float(last.iloc[-1]) if len(last) else None,
                     "genotype_hash": view.genotype_hash, **(view.genotype or {})})
    return pd.DataFrame(rows)
