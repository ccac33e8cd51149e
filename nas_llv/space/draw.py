"""Pictures of cells: a space's DAG (edges show their candidate counts) or a derived cell."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import networkx as nx

from nas_llv.io_utils import atomic_write
from nas_llv.space.spec import CellSpec, graph_of


def _layout(g: nx.MultiDiGraph) -> dict[str, tuple[float, float]]:
    pos = {}
    for x, layer in enumerate(nx.topological_generations(g)):
        for i, node in enumerate(sorted(layer)):
            pos[node] = (float(x), i - (len(layer) - 1) / 2)
    return pos


def draw_cell(cell: CellSpec, path: str | Path, title: str = "", choices: Mapping[str, str] | None = None) -> Path:
    """Write a PNG of ``cell``; with ``choices`` ({edge label: op}) edges show the chosen op."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = graph_of(cell)
    pos = _layout(g)
    width = max(6.0, 1.6 * (max(x for x, _ in pos.values()) + 1))
    fig, ax = plt.subplots(figsize=(width, 4.5))
    for u, v, data in g.edges(data=True):
        (x0, y0), (x1, y1) = pos[u], pos[v]
        searchable = data["label"] is not None
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="->", color="tab:blue" if searchable else "grey",
                                    lw=1.6 if searchable else 1.0, shrinkA=14, shrinkB=14,
                                    connectionstyle="arc3,rad=0.12"))
        text = _edge_text(data, choices)
        if text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, text, fontsize=7, ha="center", color="tab:blue")
    for node, (x, y) in pos.items():
        spec = cell.node(node)
        ax.scatter([x], [y], s=900, c="white", edgecolors="black", zorder=3)
        ax.text(x, y, f"{node}\n{spec.combine}", ha="center", va="center", fontsize=7, zorder=4)
    ax.set_title(title or f"cell: {len(cell.searchable)} searchable edges, {cell.channels} channels")
    ax.axis("off")
    ax.margins(0.12, 0.2)
    fig.tight_layout()
    out = atomic_write(path, lambda p: fig.savefig(p, dpi=120, format="png"))
    plt.close(fig)
    return out


def _edge_text(data: dict, choices: Mapping[str, str] | None) -> str:
    label = data["label"]
    if label is None:
        op = data["ops"][0]
        return "" if op == "skip" else op
    if choices is not None:
        return f"{label}: {choices.get(label, '?')}"
    return f"{label} ({len(data['ops'])} ops)"
