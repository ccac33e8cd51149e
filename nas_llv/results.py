"""Reading run folders back: trajectories as pandas frames, and the usual plots.

``load_trajectory`` gives a tidy frame, one row per (step, module, edge, op) with ``prob``;
the columns are described in ``docs/runs.md``. Plots use matplotlib's Agg canvas directly (no
pyplot state) and are written atomically.
"""
from __future__ import annotations

import glob
import logging
import math
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nas_llv.config import ConfigError
from nas_llv.io_utils import atomic_write

log = logging.getLogger(__name__)

PROB, HYPER = "prob/", "hyper/"
SCALARS = ("step", "epoch", "module", "phase", "train_loss", "val_loss", "lr", "seconds")
RunOrFrame = str | Path | pd.DataFrame


def load_trajectory_wide(run_dir: str | Path) -> pd.DataFrame:
    """``trajectory.csv`` as written: one row per step, ``prob/<edge>/<op>`` columns kept wide."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    path = run_dir / "trajectory.csv"
    if not path.is_file() or path.stat().st_size == 0:
        raise ConfigError(f"{run_dir}: no trajectory.csv (has the run taken a step yet?)")
    # round_trip: floats written with repr read back bit-identical
    frame = pd.read_csv(path, float_precision="round_trip", dtype={"module": "string", "phase": "string"})
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
    long = long.assign(edge=parts[0], op=parts[1]).drop(columns=["_row", "_col"])
    head = [c for c in ("run", *SCALARS[:4], "edge", "op", "prob") if c in long.columns]
    return long[head + [c for c in long.columns if c not in head]].reset_index(drop=True)


def load_trajectory(run_dir: str | Path) -> pd.DataFrame:
    """Tidy trajectory: one row per (step, module, edge, op) with ``prob``, plus the scalar,
    ``hyper/``, ``loss/`` and ``metric/`` columns. A run without prob columns (training) comes
    back wide, without edge/op/prob."""
    return to_tidy(load_trajectory_wide(run_dir))


def load_runs(pattern: str) -> pd.DataFrame:
    """``load_trajectory`` of every run folder matching the glob, stacked with a ``run`` column
    (the folder name). Folders without a trajectory yet are skipped with a warning."""
    dirs = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_dir())
    if not dirs:
        raise ConfigError(f"no run folders match '{pattern}'")
    frames = []
    for d in dirs:
        if not (d / "trajectory.csv").is_file():
            log.warning("%s: no trajectory.csv; skipped", d)
            continue
        frames.append(load_trajectory(d).assign(run=d.name))
    if not frames:
        raise ConfigError(f"'{pattern}' matches {len(dirs)} folders, none with a trajectory.csv")
    out = pd.concat(frames, ignore_index=True)
    return out[["run", *[c for c in out.columns if c != "run"]]]


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
    """One subplot per edge, a line per op probability vs step (DARTS-style alpha evolution).
    ``module`` keeps the edges labelled ``<module>.*`` (the supernet prefixes labels so)."""
    frame = _probs(run_or_frame, module)
    edges = list(dict.fromkeys(frame["edge"]))
    cols = min(4, len(edges))
    rows = math.ceil(len(edges) / cols)
    fig = Figure(figsize=(3.6 * cols, 2.8 * rows), layout="constrained")
    for i, edge in enumerate(edges):
        ax = fig.add_subplot(rows, cols, i + 1)
        sub = frame[frame["edge"] == edge]
        for op, line in sub.groupby("op", sort=False):
            line = line.sort_values("step")
            ax.plot(line["step"], line["prob"], label=op)
        ax.set(title=edge, xlabel="step", ylabel="probability", ylim=(0, 1))
        ax.legend(fontsize="x-small")
    return _save(fig, out_png)


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
    return _save(fig, out_png)


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


def _save(fig: Figure, out_png: str | Path) -> Path:
    FigureCanvasAgg(fig)
    return atomic_write(out_png, lambda p: fig.savefig(p, format="png", dpi=100))
