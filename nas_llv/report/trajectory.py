"""What the report plots from a trajectory (``trajectory.csv``, docs/runs.md): the scalar columns
in groups (losses, loss terms, metrics, hyper-variables, Hessian, cost, ...), each edge's op
probabilities α, and each module's edge entropies. Everything here is plain ``Chart`` data."""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from nas_llv.report.charts import Chart, Series
from nas_llv.results import PROB, edge_entropy

# (title, y-axis, columns: a name or a prefix ending in '/', one chart per column), in page order;
# columns of unlike scales (PSNR beside SSIM) get a chart each
GROUPS = (
    ("losses", "loss", ("train_loss", "val_loss"), False),
    ("loss terms (unweighted)", "loss", ("loss/",), False),
    ("validation", "value", ("metric/",), True),
    ("loss hyper-variables ς", "ς", ("hyper/",), False),
    ("loss coefficients", "factor", ("coef/",), False),
    ("Hessian: dominant eigenvalue of ∇²α", "eigenvalue", ("hessian/",), False),
    ("expected cost", "E[cost]", ("cost/",), False),
    ("α penalty", "penalty", ("penalty/",), True),
    ("hypergradient method", "value", ("hypergrad/",), True),
    ("learning rate", "lr", ("lr",), False),
)


def _columns(wide: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    return [c for c in wide.columns if any(c == w or (w.endswith("/") and c.startswith(w)) for w in wanted)]


def series_of(wide: pd.DataFrame, column: str, name: str | None = None, by_module: bool = True) -> list[Series]:
    """``column`` against step, NaN cells dropped; one line per module where the column was
    recorded for several (a search's levels: the scene's validation loss is not the task's)."""
    name = name or column
    rows = wide.dropna(subset=[column])
    modules = list(rows["module"].dropna().unique()) if by_module and "module" in rows.columns else []
    if len(modules) < 2:
        return [_line(name, rows, column)] if len(rows) else []
    return [_line(f"{name} ({m})", rows[rows["module"] == m], column) for m in modules]


def _line(name: str, rows: pd.DataFrame, column: str) -> Series:
    rows = rows.drop_duplicates("step", keep="last").sort_values("step")
    return Series(name, tuple(rows["step"].astype(float)), tuple(rows[column].astype(float)))


def scalar_charts(wide: pd.DataFrame) -> list[Chart]:
    """One chart per group of ``GROUPS`` that the trajectory has columns for (per column where
    the group splits)."""
    charts = []
    for title, ylabel, wanted, split in GROUPS:
        columns = _columns(wide, wanted)
        for group in ([c] for c in columns) if split else [columns]:
            lines = tuple(s for c in group for s in series_of(wide, c, _short(c, wanted)))
            if lines:
                charts.append(Chart(f"{title}: {_short(group[0], wanted)}" if split else title,
                                    _short(group[0], wanted) if split else ylabel, lines))
    return charts


def _short(column: str, wanted: Sequence[str]) -> str:
    """``loss/scene.ruas_scene`` -> ``scene.ruas_scene`` inside the chart of loss terms."""
    prefix = next((w for w in wanted if w.endswith("/") and column.startswith(w)), "")
    return column[len(prefix):]


def prob_columns(wide: pd.DataFrame) -> dict[str, dict[str, dict[str, str]]]:
    """module -> edge -> {column: op}, in the file's order; the module is the label's prefix
    before its first '.' ('' for a single network's unprefixed labels)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for col in (c for c in wide.columns if c.startswith(PROB)):
        edge, op = col[len(PROB):].rsplit("/", 1)  # labels may hold dots, op names never '/'
        module = edge.split(".")[0] if "." in edge else ""
        out.setdefault(module, {}).setdefault(edge, {})[col] = op
    return out


def alpha_charts(wide: pd.DataFrame) -> dict[str, list[Chart]]:
    """module -> one chart per edge: each op's probability against step, dotted at uniform 1/n."""
    return {module: [Chart(edge, "probability", tuple(s for col, op in cols.items()
                                                      for s in series_of(wide, col, op, by_module=False)),
                           hline=1.0 / len(cols))
                     for edge, cols in edges.items()]
            for module, edges in prob_columns(wide).items()}


def entropy_charts(wide: pd.DataFrame) -> list[Chart]:
    """Per module, each edge's normalised entropy (1 uniform, 0 one-hot; results.edge_entropy)."""
    frame = edge_entropy(wide)
    module = frame["edge"].map(lambda e: e.split(".")[0] if "." in e else "")
    charts = []
    for mod in prob_columns(wide):  # the file's order, as the α charts
        lines = tuple(Series(edge, tuple(g["step"].astype(float)), tuple(g["entropy"].astype(float)))
                      for edge, g in frame[module == mod].groupby("edge", sort=False))
        charts.append(Chart(f"edge entropy: {mod or 'edges'}", "entropy / log(n)", lines))
    return charts
