"""Search diagnostics from a run's trajectory: how firmly each edge chose, and when α settled.

For every edge, from the ``prob/<edge>/<op>`` columns of ``trajectory.csv`` (docs/diagnostics.md):

- **margin**: the final probability of the top op minus the runner-up's (the two ops the genotype
  would name first and second);
- **noise**: the spread (max - min) of that same difference, p_top - p_runner-up, over the last
  ``window`` share of the run's rows (default a quarter). An edge is **within noise** when its
  margin is no larger than its noise (over the end of the search the gap moved by as much as it
  now is, so where the search stopped decided the order as much as the search did), or no
  larger than ``min_margin`` (default 0.001: about three times the largest gap DARTS'
  initialisation, α ~ 1e-3·N(0, 1), puts between two of seven near-uniform ops);
- **settled epoch**: the epoch of the first row from which the edge's argmax stays the final one
  to the end. α took the largest of these to settle: after that epoch no edge's choice changed.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from nas_llv.config import ConfigError
from nas_llv.results import PROB, load_trajectory_wide

WINDOW = 0.25  # share of the rows whose spread of p_top - p_runner-up is the noise
MIN_MARGIN = 1e-3  # a margin this small is the initialisation's, whatever the spread


def prob_tables(wide: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Edge -> its probabilities, one row per trajectory row (in step order), one column per op."""
    wide = wide.sort_values("step", kind="stable")
    edges: dict[str, dict[str, str]] = {}
    for col in (c for c in wide.columns if c.startswith(PROB)):
        edge, op = col[len(PROB):].rsplit("/", 1)  # labels may hold dots and never '/'
        edges.setdefault(edge, {})[col] = op
    if not edges:
        raise ConfigError("the trajectory has no prob/<edge>/<op> columns (a training run?); no margins")
    return {edge: wide[list(cols)].rename(columns=cols).reset_index(drop=True) for edge, cols in edges.items()}


def edge_margins(run_or_wide: str | Path | pd.DataFrame, window: float = WINDOW,
                 min_margin: float = MIN_MARGIN) -> pd.DataFrame:
    """One row per edge (index ``edge``): top, runner_up, margin, noise, within_noise,
    settled_epoch; see the module docstring. ``run_or_wide``: a run folder or its wide trajectory
    (``results.load_trajectory_wide``)."""
    if not 0 < window <= 1:
        raise ConfigError(f"window={window}: expected a share of the rows in (0, 1]")
    wide = run_or_wide if isinstance(run_or_wide, pd.DataFrame) else load_trajectory_wide(run_or_wide)
    epochs = wide.sort_values("step", kind="stable")["epoch"].to_numpy()
    rows = []
    for edge, probs in prob_tables(wide).items():
        p = probs.to_numpy(dtype=float)
        if p.shape[1] < 2:
            continue  # a label with one candidate chooses nothing
        order = np.argsort(-p[-1], kind="stable")
        gap = p[:, order[0]] - p[:, order[1]]
        tail = gap[-max(2, math.ceil(window * len(gap))):]
        noise = float(tail.max() - tail.min())
        rows.append({"edge": edge, "top": probs.columns[order[0]], "runner_up": probs.columns[order[1]],
                     "margin": float(gap[-1]), "noise": noise, "within_noise": bool(gap[-1] <= max(noise, min_margin)),
                     "settled_epoch": int(epochs[_settled_row(p.argmax(axis=1))])})
    return pd.DataFrame(rows).set_index("edge")


def _settled_row(argmax: np.ndarray) -> int:
    """The first row from which ``argmax`` keeps its final value."""
    changed = np.flatnonzero(argmax != argmax[-1])
    return int(changed[-1]) + 1 if changed.size else 0


def settled_epoch(margins: pd.DataFrame) -> int:
    """The epoch after which no edge's argmax changed (the latest of the edges' settled epochs)."""
    return int(margins["settled_epoch"].max())


def margin_lines(run_or_wide: str | Path | pd.DataFrame, window: float = WINDOW) -> list[str]:
    """What ``nas-llv derive RUN`` prints: a line per edge, the flagged count, when α settled."""
    wide = run_or_wide if isinstance(run_or_wide, pd.DataFrame) else load_trajectory_wide(run_or_wide)
    table = edge_margins(wide, window)
    epochs = int(wide["epoch"].max())
    lines = [f"edge margins (top op's probability - runner-up's; noise: its spread over the last {window:.0%} "
             f"of the {len(wide)} trajectory rows; within noise: margin <= max(noise, {MIN_MARGIN})):"]
    for edge, r in table.iterrows():
        flag = "  within noise" if r["within_noise"] else ""
        lines.append(f"  {edge:18s} {r['top']:>18s} over {r['runner_up']:<18s} margin {r['margin']:.4f}  "
                     f"noise {r['noise']:.4f}  settled epoch {r['settled_epoch']}{flag}")
    return [*lines, noise_line(table), settle_line(table, epochs)]


def noise_line(margins: pd.DataFrame, named: bool = False) -> str:
    """How many edges of ``edge_margins`` chose within noise (``named``: and which)."""
    flagged = [str(e) for e in margins.index[margins["within_noise"]]]
    if not flagged:
        return f"no edge chose within noise ({len(margins)} edges)"
    return (f"{len(flagged)} of {len(margins)} edges chose within noise"
            + (f": {', '.join(flagged)}" if named else ""))


def settle_line(margins: pd.DataFrame, epochs: int) -> str:
    """When α settled (``settled_epoch``), of a search of ``epochs`` epochs."""
    settled = settled_epoch(margins)
    return (f"α took {settled} of {epochs} epochs to settle: no edge's choice changed after epoch {settled}"
            if settled < epochs else
            f"α had not settled: an edge's choice changed in the last epoch ({epochs}); search longer")


def candidate_lines(path: str | Path, shown: int = 3) -> list[str]:
    """What ``nas-llv derive RUN`` prints for a random search: its best candidates (``candidates.csv``)."""
    table = pd.read_csv(path).sort_values(["val_loss", "candidate"], kind="stable")
    lines = [f"random search: {len(table)} candidates, scored on the same validation batches; the best:"]
    best = float(table["val_loss"].iloc[0])
    for _, r in table.head(shown).iterrows():
        lines.append(f"  candidate {int(r['candidate']):3d}  validation loss {r['val_loss']:.5f}"
                     + (f"  (+{r['val_loss'] - best:.5f})" if r["val_loss"] > best else ""))
    return lines
