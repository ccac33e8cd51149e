from __future__ import annotations

import copy

import pytest
import yaml

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.space.spec import load_space, parse_space, shipped_spaces, space_to_dict

BASE = {
    "name": "tiny",
    "cell": {
        "channels": 3,
        "ops": ["conv_3x3", "skip"],
        "nodes": [{"name": "x", "combine": "input"}, {"name": "a"}, {"name": "b", "combine": "residual"},
                  {"name": "out", "combine": "concat_fuse", "output": True}],
        "edges": [{"label": "e1", "from": "x", "to": "a"}, {"label": "e2", "from": "a", "to": "b"},
                  {"from": "a", "to": "out"}, {"from": "b", "to": "out"}],
    },
}


def _mutate(fn):
    data = copy.deepcopy(BASE)
    fn(data)
    return data


def _set_edge(i, **kw):
    return lambda d: d["cell"]["edges"][i].update(kw)


BAD = {
    "unknown op": (_set_edge(0, ops=["conv_3x3", "conv_9x9"]), r"cell.edges\[0\].ops: unknown op 'conv_9x9'; allowed"),
    "cycle": (lambda d: d["cell"]["edges"].append({"label": "e3", "from": "b", "to": "a"}), r"cycle \(a -> b"),
    "dangling": (lambda d: d["cell"]["nodes"].insert(3, {"name": "lost"}), r"dangling node 'lost'"),
    "width": (lambda d: d["cell"]["nodes"][2].update(channels=6), r"width mismatch: 'a' has 3 channels, 'b' has 6"),
    "missing key": (lambda d: d["cell"].pop("nodes"), r"cell: missing required key 'nodes'"),
    "wrong type": (lambda d: d["cell"].update(channels="three"), r"cell.channels: expected int, got 'three'"),
    "unknown key": (lambda d: d.update(stages=3), r"unknown key 'stages'; allowed: name, cell"),
    "bad combine": (lambda d: d["cell"]["nodes"][1].update(combine="max"), r"'max' is not allowed; allowed: input, sum"),
    "unknown node": (_set_edge(1, to="c"), r"cell.edges\[1\].to: unknown node 'c'"),
    "no output": (lambda d: d["cell"]["nodes"][3].update(output=False), r"exactly one node with output: true"),
}


def test_base_is_valid():
    spec = parse_space(BASE, "tiny.yaml")
    assert spec.labels() == {"e1": ("conv_3x3", "skip"), "e2": ("conv_3x3", "skip")}
    assert spec.size() == 4


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_space_names_file_and_key(case, tmp_path):
    mutate, pattern = BAD[case]
    with pytest.raises(ConfigError, match=pattern) as info:
        parse_space(_mutate(mutate), "bad.yaml")
    assert str(info.value).startswith("bad.yaml: ")


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_space_cli_one_line(case, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_mutate(BAD[case][0])))
    assert main(["space", "show", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "Traceback" not in err


def test_per_repeat_labels():
    spec = parse_space({**BASE, "repeat": 2, "share_arch": False}, "x")
    assert list(spec.labels()) == ["s0.e1", "s0.e2", "s1.e1", "s1.e2"]


def test_extends_merges_and_round_trips(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", "name": "wide", "cell": {"channels": 8}}))
    spec = load_space(tmp_path / "wide.yaml")
    assert spec.cell.channels == 8 and spec.cell.ops == ("conv_3x3", "skip") and spec.name == "wide"
    assert parse_space(space_to_dict(spec), "again") == spec


def test_shipped_spaces():
    assert {"ruas_cell", "ruas_scene", "ruas_denoise", "ruas_highlevel"} <= set(shipped_spaces())
    cell = load_space("ruas_cell")
    assert len(cell.cell.searchable) == 7 and len(cell.cell.ops) == 7
    high = load_space("ruas_highlevel")
    assert not any(op.startswith("res") or op == "skip" for op in high.cell.ops)
    assert load_space("ruas_scene").repeat == 3 and load_space("ruas_denoise").cell.channels == 6
