"""Reading run folders back: trajectories as pandas frames, and the usual plots.

``load_trajectory`` gives a tidy frame, one row per (step, module, edge, op) with ``prob``;
the columns are described in ``docs/runs.md``. Plots use matplotlib's Agg canvas directly (no
pyplot state, see ``nas_llv.plotting``) and are written atomically.
"""
from __future__ import annotations

import glob
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nas_llv.config import ConfigError
from nas_llv.plotting import Figure, save_png
from nas_llv.layout import GENOTYPE, MODEL, TRAJECTORY, RunLayout

if TYPE_CHECKING:
    from matplotlib.axes import Axes

log = logging.getLogger(__name__)

PROB, HYPER = "prob/", "hyper/"
SCALARS = ("step", "epoch", "module", "phase", "train_loss", "val_loss", "lr", "seconds")
# one dtype for every text column of a trajectory: pandas' nullable string, on pandas 2 and 3 alike
TEXT = "string"
# pandas >= 3.1 reads every float exactly (float_precision is deprecated there); older versions
# need the round-trip converter for repr floats to come back bit-identical
_PANDAS = tuple(int(v) for v in re.findall(r"\d+", pd.__version__)[:2])
CSV_FLOATS: dict[str, str] = {} if _PANDAS >= (3, 1) else {"float_precision": "round_trip"}
RunOrFrame = str | Path | pd.DataFrame


def load_trajectory_wide(run_dir: str | Path) -> pd.DataFrame:
    """``trajectory.csv`` as written: one row per step, ``prob/<edge>/<op>`` columns kept wide."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    path = RunLayout(run_dir).trajectory_path
    if not path.is_file() or path.stat().st_size == 0:
        raise ConfigError(f"{run_dir}: no {TRAJECTORY} (has the run taken a step yet?)")
    frame = pd.read_csv(path, dtype={"module": TEXT, "phase": TEXT}, **CSV_FLOATS)
    if "step" not in frame.columns:
        raise ConfigError(f"{path}: no 'step' column; columns are {', '.join(frame.columns)}")
    return frame


def to_tidy(wide: pd.DataFrame) -> pd.DataFrame:
    """Melt the ``prob/<edge>/<op>`` columns into rows (edge, op, prob); empty cells are dropped.

    Rows keep the file's order (step-major, then column order). A frame without prob columns
    is returned unchanged.
    """
    probs = [c for c in wide.columns if c.startswith(PROB)]
    if not probs:
        return wide
    ids = [c for c in wide.columns if c not in probs]
    # copy() consolidates the frame's blocks (hundreds of prob columns) before the insert
    long = wide.reset_index(drop=True).copy().rename_axis("_row").reset_index()
    long = long.melt(id_vars=["_row", *ids], value_vars=probs, var_name="_col", value_name="prob")
    long = long.dropna(subset=["prob"]).sort_values("_row", kind="stable")
    # labels may hold dots ('scene.c1_d'); op names never hold '/', so split on the last one
    parts = long["_col"].str.slice(len(PROB)).str.rsplit("/", n=1, expand=True)
    long = long.assign(edge=parts[0].astype(TEXT), op=parts[1].astype(TEXT)).drop(columns=["_row", "_col"])
    head = [c for c in ("run", *SCALARS[:4], "edge", "op", "prob") if c in long.columns]
    return long[head + [c for c in long.columns if c not in head]].reset_index(drop=True)


def load_trajectory(run_dir: str | Path) -> pd.DataFrame:
    """Tidy trajectory: one row per (step, module, edge, op) with ``prob``, plus the scalar,
    ``hyper/``, ``loss/`` and ``metric/`` columns. A run without prob columns (training) comes
    back wide, without edge/op/prob."""
    return to_tidy(load_trajectory_wide(run_dir))


def load_runs(pattern: str) -> pd.DataFrame:
    """``load_trajectory`` of every run folder matching the glob, stacked with ``run`` (the folder
    name) and ``finished`` (see ``is_finished``) columns first. A sweep folder (``nas-llv sweep``)
    stands for its trials' search runs, which also get the sweep's ``trial``, ``seed`` and grid
    columns. Folders without a trajectory yet are skipped with a warning; a run still going (or
    stopped early) is kept, with a warning."""
    from nas_llv.sweep import is_sweep, sweep_runs

    dirs = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_dir())
    if not dirs:
        raise ConfigError(f"no run folders match '{pattern}'")
    runs = [run for d in dirs for run in (sweep_runs(d) if is_sweep(d) else [(d, {})])]
    frames = [frame for frame in (_run_rows(d, cols) for d, cols in runs) if frame is not None]
    if not frames:
        raise ConfigError(f"'{pattern}' matches {len(dirs)} folders, none with a {TRAJECTORY}")
    out = pd.concat(frames, ignore_index=True)
    first = ["run", "finished", *dict.fromkeys(k for _, cols in runs for k in cols)]
    return out[[*first, *[c for c in out.columns if c not in first]]]


def _run_rows(run_dir: Path, columns: dict | None = None) -> pd.DataFrame | None:
    if not RunLayout(run_dir).trajectory_path.is_file():
        log.warning("%s: no %s; skipped", run_dir, TRAJECTORY)
        return None
    wide = load_trajectory_wide(run_dir)
    finished = is_finished(run_dir, wide)
    if not finished:
        log.warning("%s: not finished (no %s yet); its rows are kept with finished=False",
                    run_dir, _end_file(wide))
    return to_tidy(wide).assign(run=run_dir.name, finished=finished, **(columns or {})).astype({"run": TEXT})


def _end_file(wide: pd.DataFrame) -> str:
    # a search writes genotype.yaml when it ends; a training run writes it when it starts
    return GENOTYPE if any(c.startswith(PROB) for c in wide.columns) else MODEL


def is_finished(run_dir: str | Path, wide: pd.DataFrame | None = None) -> bool:
    """Whether the run wrote its last file: ``genotype.yaml`` for a search (a trajectory with
    ``prob/`` columns), ``model.pt`` for a training run. Reads no checkpoint."""
    run_dir = Path(run_dir)
    wide = load_trajectory_wide(run_dir) if wide is None else wide
    return (run_dir / _end_file(wide)).is_file()


def _one_run(run_or_frame: RunOrFrame) -> pd.DataFrame:
    frame = run_or_frame if isinstance(run_or_frame, pd.DataFrame) else load_trajectory(run_or_frame)
    if "run" in frame.columns and frame["run"].nunique() > 1:
        names = ", ".join(map(str, frame["run"].unique()[:5]))
        raise ConfigError(f"the frame holds {frame['run'].nunique()} runs ({names}...); select one, "
                          "e.g. frame[frame.run == name]")
    return to_tidy(frame)


def _probs(run_or_frame: RunOrFrame, module: str | None = None) -> pd.DataFrame:
    frame = _one_run(run_or_frame)
    if "prob" not in frame.columns:
        raise ConfigError("the trajectory has no prob/<edge>/<op> columns (a training run?); nothing to plot")
    if module is not None:
        picked = frame[frame["edge"].str.startswith(f"{module}.")]
        if picked.empty:
            mods = sorted({e.split(".")[0] for e in frame["edge"] if "." in e})
            raise ConfigError(f"module '{module}': no edge is labelled '{module}.*'; "
                              f"edge prefixes are {', '.join(mods) or '(none)'}")
        frame = picked
    # steps may repeat across modules: the last record of a (step, edge, op) is the current one
    return frame.drop_duplicates(["step", "edge", "op"], keep="last")


def plot_alphas(run_or_frame: RunOrFrame, out_png: str | Path, module: str | None = None) -> Path:
    """Per edge, a line per op probability vs step (DARTS-style alpha evolution) and, below it,
    each op's change from uniform (prob - 1/n_candidates): the ops above zero are gaining.
    ``module`` keeps the edges labelled ``<module>.*`` (the supernet prefixes labels so)."""
    return save_png(alphas_figure(run_or_frame, module), out_png)


def alphas_figure(run_or_frame: RunOrFrame, module: str | None = None) -> Figure:
    """The figure ``plot_alphas`` saves: for edge i, axes 2i (probabilities, y-limits fitted to
    that edge) and 2i+1 (change from uniform, y-limits fitted to all edges, so the edges that
    moved most stand out); limits from ``y_limits``."""
    frame = _probs(run_or_frame, module)
    frame = frame.assign(gain=frame["prob"] - 1.0 / frame.groupby("edge")["op"].transform("nunique"))
    edges = list(dict.fromkeys(frame["edge"]))
    cols = min(4, len(edges))
    rows = math.ceil(len(edges) / cols)
    fig = Figure(figsize=(3.6 * cols, 4.4 * rows), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[3, 2] * rows)
    for i, edge in enumerate(edges):
        top = fig.add_subplot(grid[2 * (i // cols), i % cols])
        bottom = fig.add_subplot(grid[2 * (i // cols) + 1, i % cols], sharex=top)
        _edge_panels(top, bottom, frame[frame["edge"] == edge])
        top.set_title(edge)
        bottom.set_ylim(y_limits(frame["gain"]))
    return fig


def _edge_panels(top: Axes, bottom: Axes, sub: pd.DataFrame) -> None:
    for op, line in sub.groupby("op", sort=False):
        line = line.sort_values("step")
        top.plot(line["step"], line["prob"], label=op)
        bottom.plot(line["step"], line["gain"])
    top.axhline(1.0 / sub["op"].nunique(), color="grey", lw=0.8, ls=":")
    bottom.axhline(0.0, color="grey", lw=0.8, ls=":")
    top.set(ylabel="probability", ylim=y_limits(sub["prob"]))
    top.tick_params(labelbottom=False)
    bottom.set(xlabel="step", ylabel="prob − 1/n")
    top.legend(fontsize="x-small")


def y_limits(values: pd.Series | np.ndarray, margin: float = 0.05, min_span: float = 1e-3) -> tuple[float, float]:
    """Axis limits around ``values`` with ``margin`` x their span on each side; a span under
    ``min_span`` (a flat line) is widened to it, centred, so noise is not blown up."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    half = max(hi - lo, min_span) * (0.5 + margin)
    mid = (lo + hi) / 2
    return mid - half, mid + half


def edge_entropy(run_or_frame: RunOrFrame, module: str | None = None) -> pd.DataFrame:
    """Each edge's entropy at each step, normalised by log(number of candidates): 1 is uniform
    (nothing chosen yet), 0 one-hot. Columns step, edge, entropy (``module`` as in plot_alphas).
    The weights are divided by their sum per edge first: softmax weights sum to 1 already, the σ(α)
    of the sigmoid relaxation (docs/remedies.md) do not (all near 1: every op kept, entropy near 1)."""
    frame = _probs(run_or_frame, module)
    p = frame["prob"].clip(lower=0.0)
    p = p / p.groupby([frame["step"], frame["edge"]], sort=False).transform("sum").where(lambda t: t > 0, 1.0)
    frame = frame.assign(h=-(p * np.log(p.where(p > 0, 1.0))))
    out = frame.groupby(["step", "edge"], sort=False).agg(h=("h", "sum"), n=("op", "nunique")).reset_index()
    out["entropy"] = out["h"] / np.log(out["n"].where(out["n"] > 1, np.e))
    return out[["step", "edge", "entropy"]].sort_values(["edge", "step"], kind="stable").reset_index(drop=True)


def plot_entropy(run_or_frame: RunOrFrame, out_png: str | Path, module: str | None = None) -> Path:
    """Each edge's normalised entropy (``edge_entropy``) against step, one panel per module (the
    label prefix before the first '.'), one line per edge: an edge whose line stays near 1 never
    chose; one still falling at the end had not finished choosing."""
    frame = edge_entropy(run_or_frame, module)
    modules = list(dict.fromkeys(e.split(".")[0] if "." in e else "" for e in frame["edge"]))
    fig = Figure(figsize=(6.4, 3.6 * len(modules)), layout="constrained")
    axes = [fig.add_subplot(len(modules), 1, i + 1) for i in range(len(modules))]
    for ax, mod in zip(axes, modules):
        for edge, line in frame.groupby("edge", sort=False):
            if (edge.split(".")[0] if "." in edge else "") == mod:
                ax.plot(line["step"], line["entropy"], label=edge[len(mod) + 1:] if mod else edge)
        ax.set(xlabel="step", ylabel="entropy / log(n)", ylim=(-0.02, 1.02), title=mod or "edges")
        ax.legend(fontsize="x-small", ncol=2)
    return save_png(fig, out_png)


def plot_hyper(run_or_frame: RunOrFrame, out_png: str | Path) -> Path:
    """Loss-weight hyper-variables vs step, one line each (TriCo Fig. 7)."""
    frame = _one_run(run_or_frame)
    names = [c for c in frame.columns if c.startswith(HYPER)]
    if not names:
        raise ConfigError("the trajectory has no hyper/<name> columns; nothing to plot")
    frame = frame[["step", *names]].drop_duplicates("step", keep="last").sort_values("step")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for name in names:
        line = frame[["step", name]].dropna()
        ax.plot(line["step"], line[name], label=name[len(HYPER):])
    ax.set(xlabel="step", ylabel="hyper-variable value")
    ax.legend()
    return save_png(fig, out_png)


def final_probs(run_or_frame: RunOrFrame) -> pd.DataFrame:
    """Last recorded probabilities of each edge: a frame indexed by edge, one column per op
    (NaN where an op is not a candidate of that edge)."""
    frame = _probs(run_or_frame)
    last = frame[frame["step"] == frame.groupby("edge")["step"].transform("max")]
    last = last.drop_duplicates(["edge", "op"], keep="last")
    table = last.pivot(index="edge", columns="op", values="prob")
    table = table.reindex(index=list(dict.fromkeys(frame["edge"])), columns=list(dict.fromkeys(frame["op"])))
    table.index.name, table.columns.name = "edge", "op"
    return table
