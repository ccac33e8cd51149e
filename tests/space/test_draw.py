from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nas_llv.plotting import text_size
from nas_llv.space import draw
from nas_llv.space.spec import graph_of, load_space, shipped_spaces

PARALLEL = """\
name: parallel
description: two mixed edges between the same nodes, a fixed op beside a mixed edge, long skips
cell:
  channels: 4
  ops: [conv_1x1, conv_3x3, skip]
  nodes:
    - {name: x, combine: input}
    - {name: a, combine: sum}
    - {name: b, combine: sum}
    - {name: c, combine: residual}
    - {name: y, combine: concat_fuse, output: true}
  edges:
    - {label: e1, from: x, to: a}
    - {label: e2, from: x, to: a}
    - {label: e3, from: a, to: b}
    - {from: a, to: b, op: conv_3x3}
    - {label: e4, from: b, to: c}
    - {from: x, to: c}
    - {from: x, to: y}
    - {from: c, to: y}
    - {label: e5, from: a, to: y}
model: {type: cell_stack}
"""


def _geometry(cell, choices=None):
    g = graph_of(cell)
    pos = draw._layout(g)
    radius = {n: draw._radius(draw._node_text(cell, n)) for n in g.nodes}
    edges = draw._route(g, pos, radius, choices)
    draw._place_labels(edges, pos, radius)
    return pos, radius, edges


def _cells(tmp_path):
    (tmp_path / "parallel.yaml").write_text(PARALLEL)
    return [load_space(name).cell for name in shipped_spaces()] + [load_space(tmp_path / "parallel.yaml").cell]


def test_layers_follow_the_dag_and_circles_hold_their_names(tmp_path):
    for cell in _cells(tmp_path):
        pos, radius, edges = _geometry(cell)
        assert all(pos[e.v][0] > pos[e.u][0] for e in edges)  # every edge runs left to right
        for node, r in radius.items():
            w, h = text_size(draw._node_text(cell, node), draw.NODE_FONT)
            assert r * draw.UNIT >= np.hypot(w, h) / 2


def test_edges_clear_other_nodes_and_labels_clear_everything(tmp_path):
    for cell in _cells(tmp_path):
        pos, radius, edges = _geometry(cell)
        for e in edges:
            others = [(pos[n], r) for n, r in radius.items() if n not in (e.u, e.v)]
            assert draw._clear(e.curve, others), f"{e.u}->{e.v} passes through a node"
        nodes = [(pos[n], r) for n, r in radius.items()]
        placed = []
        for e in (e for e in edges if e.text):
            half = draw._label_half(e.text)
            assert draw._free(e.label_at, half, edges, nodes, placed), f"label '{e.text}' sits on something"
            placed.append((e.label_at, half))


def test_parallel_edges_get_different_arcs(tmp_path):
    (tmp_path / "parallel.yaml").write_text(PARALLEL)
    _, _, edges = _geometry(load_space(tmp_path / "parallel.yaml").cell)
    bends = {}
    for e in edges:
        bends.setdefault((e.u, e.v), []).append(e.bend)
    assert len(set(bends[("x", "a")])) == 2 and len(set(bends[("a", "b")])) == 2
    assert {e.text for e in edges} >= {"e1 (3 ops)", "conv_3x3", ""}  # skips go unlabelled


@pytest.mark.parametrize("choices", [None, {"c1_d": "resdilconv_3x3_d2"}])
def test_draw_cell_writes_a_png(tmp_path, choices):
    cell = load_space("ruas_cell").cell
    out = draw.draw_cell(cell, tmp_path / "cell.png", choices=choices)
    pixels = np.asarray(Image.open(io.BytesIO(out.read_bytes())).convert("L"))
    assert pixels.min() < 128 < pixels.max() and pixels.shape[1] > pixels.shape[0]
    texts = {e.text for e in _geometry(cell, choices)[2]}
    assert ("c1_d: resdilconv_3x3_d2" in texts) == (choices is not None)
