"""Search extensions (search/extensions/, docs/extensions.md): every registered one is a recipe key,
off by default, typed and written back as given, and runs in a tiny search; the loop calls a probe
extension's hooks at their moments, keeps its checkpoint entry and stops when it asks; and the loop
names no extension."""
from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import stopped_and_resumed, tiny_searcher
from nas_llv.config import ConfigError
from nas_llv.recipe import recipe_from_dict
from nas_llv.registry import EXTENSIONS
from nas_llv.search import extensions
from nas_llv.search.extensions import Extension, register
from test_search import TINY

# each registered extension switched on by its recipe keys (with what it needs beside them); a new
# extension adds its row, or test_every_extension_has_an_example fails
EXAMPLE = {
    "hessian": {"hessian": {"every": 1, "iters": 2}},
    "perturb": {"perturb": {"epsilon": 0.03}},
    "aux_skip": {"aux_skip": {"weight": 0.5}},
    "zero_one": {"zero_one": 10.0, "relaxation": "sigmoid"},
    "cost": {"cost": {"size": [32, 24], "target": 0.005}},
    "max_skip": {"max_skip": 0},
    "presence": {"presence": {"weights": "present"}},
}
# an extension that needs more of the recipe than its key: that recipe (the rest: TINY)
BASE = {"presence": {**TINY, "network": {**TINY["network"], "spaces": {**TINY["network"]["spaces"],
                                                                       "denoise": "ruas_denoise_capacity"}}}}


def _recipe(base=TINY, **search):
    data = yaml.safe_load(yaml.safe_dump(base))
    data["search"].update(search)
    return recipe_from_dict(data, "tiny.yaml")


def test_every_extension_has_an_example():
    assert set(EXAMPLE) == set(EXTENSIONS.names())


def test_every_extension_is_off_by_default():
    values = _recipe().search.extensions
    assert set(values) == set(EXTENSIONS.names())
    assert all(value == EXTENSIONS.get(key).off for key, value in values.items())
    assert extensions.build(values) == []


@pytest.mark.parametrize("key", sorted(EXAMPLE))
def test_an_extensions_key_is_typed_and_written_back_as_given(key):
    recipe = _recipe(BASE.get(key, TINY), **EXAMPLE[key])
    value = recipe.search.extensions[key]
    assert value != EXTENSIONS.get(key).off and getattr(recipe.search, key) == value  # read as before: search.<key>
    written = recipe.to_dict()["search"]
    assert "extensions" not in written and written[key] is not None
    assert recipe_from_dict(recipe.to_dict(), "config.yaml") == recipe
    (built,) = extensions.build(recipe.search.extensions)
    assert isinstance(built, EXTENSIONS.get(key)) and built.options == value


@pytest.mark.parametrize("key", sorted(EXAMPLE))
def test_each_extension_runs_in_a_tiny_search(tmp_path, key):
    s = tiny_searcher(BASE.get(key, TINY), tmp_path, epochs=1, steps_per_epoch=1, **EXAMPLE[key])
    assert [ext.key for ext in s.extensions] == [key]
    assert s.run() is True
    assert (s.attached_run.dir / "genotype.yaml").is_file()
    with pytest.raises(KeyError, match="off in this search"):
        s.extension("perturb" if key != "perturb" else "hessian")


# -- a probe: every hook, called where the loop promises --------------------------------------

@dataclass(frozen=True)
class ProbeConfig:
    stop_after: int = 2      # the epoch after which it asks the search to stop


class Probe(Extension):
    """Records every hook call; a column, a derive meta entry, a final and a described meta entry."""

    order = 0
    state_key = "probe"

    def __init__(self, options: ProbeConfig) -> None:
        super().__init__(options)
        self.calls: list[tuple] = []
        self.rows = 0

    def setup(self, search):
        self.calls.append(("setup", len(search.levels)))

    def attach(self, search):
        self.calls.append(("attach", sorted(search.levels)))

    def attach_run(self, run):
        self.calls.append(("attach_run", run.dir.name))

    def before_iteration(self, epoch):
        self.calls.append(("before_iteration", epoch))

    def columns(self, name, level, batch):
        self.rows += 1
        return {"probe/rows": self.rows}

    def end_epoch(self, epoch):
        self.calls.append(("end_epoch", epoch))

    @property
    def should_stop(self):
        return any(call == ("end_epoch", self.options.stop_after - 1) for call in self.calls)

    def derive(self, choices, weights):
        assert set(weights) == set(choices)
        return choices, {"probe_derived": True}

    def final(self, genotype):
        return dataclasses.replace(genotype, meta={**genotype.meta, "probe_final": True})

    def describe(self, genotype):
        return dataclasses.replace(genotype, meta={**genotype.meta, "probe_described": True})

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = state["rows"]


@pytest.fixture
def probe():
    register("probe", ProbeConfig)(Probe)
    yield Probe
    EXTENSIONS.unregister("probe")


def test_the_loop_calls_each_hook_at_its_moment(tmp_path, probe):
    s = tiny_searcher(TINY, tmp_path, epochs=3, probe={"stop_after": 2})
    (ext,) = s.extensions
    assert ext.calls == [("setup", 0), ("attach", ["scene", "task"]), ("attach_run", s.attached_run.dir.name)]
    assert s.run() is True and s.epoch == 2  # stopped after epoch 2 of 3
    assert ext.calls[3:] == [("before_iteration", 0)] * 2 + [("end_epoch", 0)] + [("before_iteration", 1)] * 2 + [
        ("end_epoch", 1)]
    run = s.attached_run.dir
    assert pd.read_csv(run / "trajectory.csv")["probe/rows"].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # 2 levels x 2 x 2
    final, best = (yaml.safe_load((run / name).read_text())["meta"] for name in ("genotype.yaml", "genotype_best.yaml"))
    assert final["probe_derived"] and final["probe_final"] and final["probe_described"]
    assert best["probe_derived"] and best["probe_described"] and "probe_final" not in best
    assert s.state_dict()["probe"] == {"rows": 8}
    assert yaml.safe_load((run / "config.yaml").read_text())["search"]["probe"] == {"stop_after": 2}


def test_a_resumed_search_gets_the_extensions_checkpoint_entry_back(tmp_path, probe):
    resumed = stopped_and_resumed(tiny_searcher(TINY, tmp_path, epochs=3, probe={"stop_after": 3}), stop_after=5)
    assert resumed.extension("probe").rows == 12  # 5 rows before the stop, 7 after
    assert pd.read_csv(resumed.attached_run.dir / "trajectory.csv")["probe/rows"].tolist() == list(range(1, 13))


def test_an_extensions_options_are_checked_and_a_clashing_checkpoint_key_refused(tmp_path, probe):
    with pytest.raises(ConfigError, match=r"tiny.yaml: search.probe: unknown key 'stop'; allowed: stop_after"):
        _recipe(probe={"stop": 1})
    s = tiny_searcher(TINY, tmp_path, probe={})
    s.extensions[0].state_key = "network"
    with pytest.raises(ValueError, match=r"search extension 'probe': checkpoint keys \['network'\] are taken"):
        s.state_dict()
    s.close()


def test_the_loop_names_no_extension():
    """search/loop.py reaches the extensions through their package and hooks alone: no extension's
    module, no attribute or string that is an extension's key (``self.cfg.cost``, ``"hessian"``)."""
    tree = ast.parse((Path(extensions.__file__).parents[1] / "loop.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "nas_llv.search.extensions" in imported
    assert not {m for m in imported if m and m.startswith("nas_llv.search.extensions.")}
    keys = set(EXTENSIONS.names())
    named = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    named |= {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not named & keys
