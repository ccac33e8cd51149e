"""P-DARTS' cap on skip ops per cell (space/skip_cap.py) on hand-made weights, and its cell groups."""
from __future__ import annotations

import dataclasses

from nas_llv.space.ops import SKIP_OPS
from nas_llv.space.skip_cap import cap_skips, capped, cell_groups
from nas_llv.space.spec import load_space

# cell A: four edges all preferring skip, with different skip weights; cell B: one skip, under any cap
WEIGHTS = {
    "a.e1": {"skip": 0.70, "conv_3x3": 0.20, "conv_1x1": 0.10},
    "a.e2": {"skip": 0.90, "conv_3x3": 0.02, "conv_1x1": 0.08},
    "a.e3": {"skip": 0.50, "conv_3x3": 0.30, "conv_1x1": 0.20},
    "a.e4": {"skip": 0.80, "conv_3x3": 0.05, "conv_1x1": 0.15},
    "a.e5": {"skip": 0.10, "conv_3x3": 0.60, "conv_1x1": 0.30},
    "b.e1": {"skip": 0.60, "conv_3x3": 0.40},
    "b.e2": {"skip": 0.30, "conv_3x3": 0.70},
}
GROUPS = [["a.e1", "a.e2", "a.e3", "a.e4", "a.e5"], ["b.e1", "b.e2"]]
ARGMAX = {label: max(w, key=w.get) for label, w in WEIGHTS.items()}


def test_the_strongest_skips_keep_it_and_the_others_take_their_best_non_skip_op():
    assert cap_skips(ARGMAX, WEIGHTS, GROUPS, 2) == {"a.e1": "conv_3x3", "a.e3": "conv_3x3"}


def test_a_cell_under_the_cap_is_unchanged():
    assert cap_skips(ARGMAX, WEIGHTS, GROUPS, 4) == {}
    assert cap_skips(ARGMAX, WEIGHTS, GROUPS, 3) == {"a.e3": "conv_3x3"}


def test_no_skip_at_all_with_a_cap_of_zero():
    assert cap_skips(ARGMAX, WEIGHTS, GROUPS, 0) == {"a.e1": "conv_3x3", "a.e2": "conv_1x1", "a.e3": "conv_3x3",
                                                    "a.e4": "conv_1x1", "b.e1": "conv_3x3"}


def test_the_cap_counts_per_cell_not_over_the_network():
    """Counted over both cells, M=2 would also drop b.e1 (weaker than a.e2 and a.e4)."""
    assert "b.e1" not in cap_skips(ARGMAX, WEIGHTS, GROUPS, 2)
    assert set(cap_skips(ARGMAX, WEIGHTS, [sum(GROUPS, [])], 2)) == {"a.e1", "a.e3", "b.e1"}


def test_an_edge_with_only_skip_keeps_it_and_uses_up_the_cap():
    weights = {"x": {"skip": 0.2}, **{k: WEIGHTS[k] for k in ("a.e1", "a.e2")}}
    choices = {"x": "skip", "a.e1": "skip", "a.e2": "skip"}
    assert cap_skips(choices, weights, [["x", "a.e1", "a.e2"]], 2) == {"a.e1": "conv_3x3"}


def test_capped_caps_each_module_of_a_network_and_records_the_changed_edges():
    scene = load_space("ruas_scene")
    spaces = {"scene": scene, "denoise": load_space("ruas_denoise")}
    labels = [f"{m}.{e.label}" for m in spaces for e in spaces[m].cell.searchable]
    # every edge prefers skip; the earlier the edge, the stronger its skip weight
    weights = {lab: {op: 0.0 for op in spaces[lab.split(".")[0]].labels(lab.split(".")[0] + ".")[lab]}
               for lab in labels}
    for i, lab in enumerate(labels):
        weights[lab].update({"skip": 0.9 - 0.01 * i, "conv_3x3": 0.05})
    choices, meta = capped({lab: "skip" for lab in labels}, weights, {"type": "ruas"}, spaces, 1)
    kept = [lab for lab in labels if choices[lab] == "skip"]
    assert kept == ["scene.c1_d", "denoise.c1_d"]  # the first (strongest) edge of each module's cell
    assert meta["max_skip"]["max"] == 1
    assert meta["max_skip"]["changed"] == {lab: {"from": "skip", "to": "conv_3x3"} for lab in labels if lab not in kept}


def test_cell_groups_follow_share_arch():
    scene = load_space("ruas_scene")
    edges = [e.label for e in scene.cell.searchable]
    assert cell_groups({"type": "ruas"}, {"scene": scene}) == [[f"scene.{e}" for e in edges]]
    per_stage = dataclasses.replace(scene, share_arch=False)
    assert cell_groups({"type": "single"}, {"net": per_stage}) == [[f"s{i}.{e}" for e in edges]
                                                                   for i in range(scene.repeat)]
    assert sum(cell_groups({"type": "single"}, {"net": per_stage}), []) == list(per_stage.labels())


def test_skip_ops_are_the_parameter_free_identities_of_the_op_table():
    assert SKIP_OPS == {"skip"}
