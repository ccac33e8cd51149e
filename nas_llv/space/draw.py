"""Pictures of cells: a space's DAG (edges show their candidate counts) or a derived cell.

Nodes sit in layers (topological generations, left to right), each layer ordered by the mean
height of its nodes' inputs. Node circles fit their text. An edge that would pass through
another node, or runs parallel to another edge between the same nodes, is drawn as an arc
(the smallest bend that clears every other node); its label sits beside the curve's middle, on
a white box, clear of the line. Geometry is in data units with a fixed number of points per
unit, so text measured in points converts exactly.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import networkx as nx
import numpy as np

from nas_llv.plotting import Figure, save_png, text_size
from nas_llv.space.spec import CellSpec, graph_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.patches import Circle

UNIT = 100.0  # points per data unit
LAYER_GAP, ROW_GAP = 1.7, 1.1  # data units between layers (x) and between nodes of a layer (y)
NODE_FONT, EDGE_FONT, TITLE_FONT = 8.0, 7.5, 10.0
CLEARANCE = 0.1  # data units kept between a curve and a node it does not touch
BENDS = (0.0, -0.15, 0.15, -0.3, 0.3, -0.45, 0.45, -0.6, 0.6)  # arc3 radii, tried in order
SEARCHABLE, FIXED = "tab:blue", "dimgrey"


@dataclass
class _Edge:
    u: str
    v: str
    text: str
    searchable: bool
    bend: float = 0.0
    curve: np.ndarray | None = None  # (K, 2) points along the drawn curve
    label_at: np.ndarray | None = None  # centre of the label's box


DPI = 120


def draw_cell(cell: CellSpec, path: str | Path, title: str = "", choices: Mapping[str, str] | None = None) -> Path:
    """Write a PNG of ``cell``; with ``choices`` ({edge label: op}) edges show the chosen op."""
    return save_png(cell_figure(cell, title, choices), path, dpi=DPI)


def cell_figure(cell: CellSpec, title: str = "", choices: Mapping[str, str] | None = None) -> Figure:
    """The figure ``draw_cell`` saves (``nas-llv report`` embeds it in its page)."""
    g = graph_of(cell)
    pos = _layout(g)
    radius = {n: _radius(_node_text(cell, n)) for n in g.nodes}
    edges = _route(g, pos, radius, choices)
    _place_labels(edges, pos, radius)
    title = title or f"cell: {len(cell.searchable)} searchable edges, {cell.channels} channels"
    return _figure(cell, pos, radius, edges, title)


def _layout(g: nx.MultiDiGraph) -> dict[str, np.ndarray]:
    """Layer x = topological generation; within a layer, nodes ordered by their inputs' mean y."""
    pos: dict[str, np.ndarray] = {}
    for x, layer in enumerate(nx.topological_generations(g)):
        heights = {n: np.mean([pos[p][1] for p in g.predecessors(n)] or [0.0]) for n in layer}
        for i, node in enumerate(sorted(layer, key=lambda n: (heights[n], n))):
            pos[node] = np.array([x * LAYER_GAP, (i - (len(layer) - 1) / 2) * ROW_GAP])
    return pos


def _node_text(cell: CellSpec, node: str) -> str:
    return f"{node}\n{cell.node(node).combine}"


def _radius(text: str) -> float:
    """A circle (data units) around ``text``'s box, with a little room."""
    w, h = text_size(text, NODE_FONT)
    return max(0.22, (np.hypot(w, h) / 2 + 4) / UNIT)


def _route(g: nx.MultiDiGraph, pos: dict, radius: dict, choices: Mapping[str, str] | None) -> list[_Edge]:
    """Short edges first, each with the bend that clears the other nodes and touches the fewest
    curves already routed (the smallest such bend); parallel edges get different bends."""
    edges: list[_Edge] = []
    for u, v, data in sorted(g.edges(data=True), key=lambda e: abs(pos[e[1]][0] - pos[e[0]][0])):
        edge = _Edge(u, v, _edge_text(data, choices), data["label"] is not None)
        taken = {e.bend for e in edges if {e.u, e.v} == {u, v}}
        others = [(pos[n], radius[n]) for n in g.nodes if n not in (u, v)]
        bends = [b for b in BENDS if b not in taken]
        edge.bend = min(bends, key=lambda b: (_cost(_arc(pos[u], pos[v], b), (u, v), others, edges, pos, radius),
                                              BENDS.index(b)))
        edge.curve = _arc(pos[u], pos[v], edge.bend)
        edges.append(edge)
    return edges


def _cost(curve: np.ndarray, ends: tuple[str, str], others: list, routed: list[_Edge], pos: dict,
          radius: dict) -> float:
    """inf through another node, else the number of routed curves it crosses or runs close to."""
    if not _clear(curve, others):
        return np.inf
    return sum(_touch(curve, e.curve, set(ends) & {e.u, e.v}, pos, radius) for e in routed)


def _touch(a: np.ndarray, b: np.ndarray, shared: set[str], pos: dict, radius: dict) -> bool:
    """Whether two curves cross or run close, away from the nodes they share."""
    a, b = a[::4], b[::4]
    for n in shared:
        a = a[np.linalg.norm(a - pos[n], axis=1) > radius[n] + 0.35]
        b = b[np.linalg.norm(b - pos[n], axis=1) > radius[n] + 0.35]
    if not len(a) or not len(b):
        return False
    return np.linalg.norm(a[:, None] - b[None], axis=2).min() < 0.08


def _arc(a: np.ndarray, b: np.ndarray, bend: float, k: int = 201) -> np.ndarray:
    """Points of matplotlib's ``arc3,rad=bend`` between a and b: a quadratic Bezier curve."""
    d = b - a
    control = (a + b) / 2 + bend * np.array([d[1], -d[0]])
    t = np.linspace(0.0, 1.0, k)[:, None]
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b


def _clear(curve: np.ndarray, circles: list[tuple[np.ndarray, float]]) -> bool:
    return all(np.linalg.norm(curve - c, axis=1).min() > r + CLEARANCE for c, r in circles)


def _label_half(text: str) -> np.ndarray:
    w, h = text_size(text, EDGE_FONT)
    return np.array([w / 2 + 2, 0.6 * h + 2]) / UNIT  # half width, half height of the white box


def _place_labels(edges: list[_Edge], pos: dict, radius: dict) -> None:
    """Beside each curve's middle (or a little along it), on the free side; first free spot wins."""
    nodes = [(pos[n], r) for n, r in radius.items()]
    boxes: list[tuple[np.ndarray, np.ndarray]] = []
    for e in (e for e in edges if e.text):
        half = _label_half(e.text)
        spots = _label_spots(e, half)
        e.label_at = next((c for c in spots if _free(c, half, edges, nodes, boxes)), spots[0])
        boxes.append((e.label_at, half))


def _label_spots(e: _Edge, half: np.ndarray) -> list[np.ndarray]:
    """Box centres at a perpendicular offset from points near the curve's middle, bulge side first."""
    k = len(e.curve)
    bulge = e.curve[k // 2] - (e.curve[0] + e.curve[-1]) / 2
    spots = []
    for frac in (0.5, 0.4, 0.6, 0.3, 0.7):
        i = int(frac * (k - 1))
        tangent = e.curve[i + 1] - e.curve[i - 1]
        normal = np.array([-tangent[1], tangent[0]]) / np.linalg.norm(tangent)
        if (normal @ bulge < 0) if abs(e.bend) > 0 else (normal[1], normal[0]) < (0, 0):
            normal = -normal
        gap = half @ np.abs(normal) + 0.04  # the box's extent along the normal, plus air
        spots += [e.curve[i] + gap * normal, e.curve[i] - gap * normal]
    return spots


def _free(centre: np.ndarray, half: np.ndarray, edges: list[_Edge], nodes: list, boxes: list) -> bool:
    if any((np.abs(e.curve - centre) < half).all(axis=1).any() for e in edges):
        return False
    if any(np.linalg.norm(np.clip(c, centre - half, centre + half) - c) < r + 0.03 for c, r in nodes):
        return False
    return not any((np.abs(centre - c) < half + h).all() for c, h in boxes)


def _edge_text(data: dict, choices: Mapping[str, str] | None) -> str:
    label = data["label"]
    if label is None:
        op = data["ops"][0]
        return "" if op == "skip" else op
    if choices is not None:
        return f"{label}: {choices.get(label, '?')}"
    return f"{label} ({len(data['ops'])} ops)"


def _figure(cell: CellSpec, pos: dict, radius: dict, edges: list[_Edge], title: str) -> Figure:
    lo, hi = _extent(pos, radius, edges)
    width_pt = max(6.0 * 72, (hi[0] - lo[0]) * UNIT)
    lines = textwrap.wrap(title, max(20, int(width_pt / (0.55 * TITLE_FONT))))
    title_pt, data_pt = (len(lines) * 1.3 + 1.5) * TITLE_FONT, (hi[1] - lo[1]) * UNIT
    fig = Figure(figsize=(width_pt / 72, (data_pt + title_pt) / 72))
    ax = fig.add_axes((0.0, 0.0, 1.0, data_pt / (data_pt + title_pt)))
    pad = (width_pt / UNIT - (hi[0] - lo[0])) / 2  # a figure wider than the cell: centre it
    ax.set(xlim=(lo[0] - pad, hi[0] + pad), ylim=(lo[1], hi[1]))
    ax.axis("off")
    fig.text(0.5, 1 - 0.5 * TITLE_FONT / (data_pt + title_pt), "\n".join(lines), ha="center", va="top",
             fontsize=TITLE_FONT)
    circles = {n: _draw_node(ax, cell, n, pos[n], radius[n]) for n in pos}
    for e in edges:
        _draw_edge(ax, e, pos, circles)
    return fig


def _extent(pos: dict, radius: dict, edges: list[_Edge]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-left and upper-right corners (data units) of everything drawn, with a margin."""
    pts = [np.stack([pos[n] - r, pos[n] + r]) for n, r in radius.items()] + [e.curve for e in edges]
    pts += [np.stack([e.label_at - _label_half(e.text), e.label_at + _label_half(e.text)])
            for e in edges if e.label_at is not None]
    pts = np.concatenate(pts)
    return pts.min(axis=0) - 0.15, pts.max(axis=0) + 0.15


def _draw_node(ax: Axes, cell: CellSpec, node: str, xy: np.ndarray, r: float) -> Circle:
    from matplotlib.patches import Circle  # after nas_llv.plotting has imported matplotlib quietly

    spec = cell.node(node)
    circle = Circle(tuple(xy), r, fc="whitesmoke" if spec.combine == "input" else "white", ec="black",
                    lw=2.0 if spec.output else 1.0, zorder=3)
    ax.add_patch(circle)
    ax.text(*xy, _node_text(cell, node), ha="center", va="center", fontsize=NODE_FONT, zorder=4,
            linespacing=1.2)
    return circle


def _draw_edge(ax: Axes, e: _Edge, pos: dict, circles: dict[str, Circle]) -> None:
    from matplotlib.patches import FancyArrowPatch

    color = SEARCHABLE if e.searchable else FIXED
    ax.add_patch(FancyArrowPatch(tuple(pos[e.u]), tuple(pos[e.v]), connectionstyle=f"arc3,rad={e.bend}",
                                 arrowstyle="-|>", mutation_scale=11, lw=1.6 if e.searchable else 1.0,
                                 color=color, patchA=circles[e.u], patchB=circles[e.v], shrinkA=0,
                                 shrinkB=1, zorder=2))
    if e.label_at is not None:
        ax.text(*e.label_at, e.text, ha="center", va="center", fontsize=EDGE_FONT, color=color, zorder=5,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
