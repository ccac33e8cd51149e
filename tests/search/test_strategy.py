"""Strategies are composed into the loop: a new one is a few lines in one module (here, this test),
each shipped one has its options dataclass, and model hooks replace model names."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nas_llv.config import ConfigError, from_dict
from nas_llv.recipe import load_recipe, recipe_from_dict
from nas_llv.registry import STRATEGIES
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.search.strategies.hyper import HyperConfig
from nas_llv.search.strategies.ruas import CooperativeConfig, GlobalConfig, SceneLevel
from nas_llv.search.strategy import Strategy
from nas_llv.space.models import RUAS
from nas_llv.space.models.llsr import CollaBALLSR, TriCoLLSR

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "llsr_demo.yaml"
SCENE_ONLY = {
    "name": "scene_only",
    "network": {"type": "ruas", "spaces": {"scene": "ruas_scene"}, "options": {"variant": "ruas_s"}},
    "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16, "batch_size": 1},
    "losses": {"scene": {"type": "ruas_scene"}},
    "search": {"strategy": "test_scene_only", "epochs": 2, "steps_per_epoch": 2, "val_batches": 1,
               "scene_steps": 2, "weights": {"lr": 0.01}},
}


# -- a new strategy: its options dataclass and ~10 lines, registered, nothing else touched --------

@dataclass(frozen=True)
class SceneOnlyConfig:
    """Options of the test strategy (``scene_steps``: a key the recipe's search section also
    accepted before strategies had their own options, so the test holds either way)."""

    scene_steps: int = 1


class SceneOnly(Strategy):
    """The RUAS scene module alone, with its own loss only (β = 0)."""

    needs = ("scene",)

    def build_levels(self, net, losses):
        return {"scene": SceneLevel(net, losses("scene"), None, 0.0)}

    def schedule(self, epoch):
        return ["scene"] * self.opts.scene_steps


@pytest.fixture
def scene_only():
    """SceneOnly registered for one test; the registry is restored afterwards."""
    yield STRATEGIES.register("test_scene_only", config=SceneOnlyConfig)(SceneOnly)
    STRATEGIES.unregister("test_scene_only")
    assert "test_scene_only" not in STRATEGIES


def _recipe(**losses):
    data = yaml.safe_load(yaml.safe_dump(SCENE_ONLY))
    data["losses"] = losses or data["losses"]
    return recipe_from_dict(data, "scene_only.yaml")


def test_a_strategy_defined_elsewhere_runs_end_to_end(tmp_path, scene_only):
    assert STRATEGIES.config_of("test_scene_only") is SceneOnlyConfig
    searcher = Searcher(_recipe())
    assert isinstance(searcher.strategy, SceneOnly) and list(searcher.levels) == ["scene"]
    searcher.attach(Run.create(searcher.recipe.to_dict(), "scene_only", tmp_path))
    assert searcher.run()
    frame = pd.read_csv(searcher.attached_run.dir / "trajectory.csv")
    assert list(frame["module"]) == ["scene"] * 8  # 2 epochs x 2 iterations x scene_steps 2
    assert list(frame["step"]) == list(range(1, 9))
    genotype = yaml.safe_load((searcher.attached_run.dir / "genotype.yaml").read_text())
    assert genotype["meta"]["strategy"] == "test_scene_only"


def test_a_missing_loss_names_what_the_strategy_needs(scene_only):
    with pytest.raises(ConfigError, match=r"losses\.scene is missing; this strategy needs losses: scene$"):
        Searcher(_recipe(task={"type": "ruas_denoise"}))


# -- the shipped strategies' options --------------------------------------------------------------

def test_each_shipped_strategy_has_its_options_dataclass():
    configs = {name: STRATEGIES.config_of(name) for name in ("cooperative", "global", "independent", "hyper")}
    assert configs == {"cooperative": CooperativeConfig, "global": GlobalConfig, "independent": None,
                       "hyper": HyperConfig}
    assert CooperativeConfig() == CooperativeConfig(beta=1.0, scene_steps=1, task_steps=1)
    assert HyperConfig().s2_epochs == 0 and HyperConfig().upper_objective == "fixed"


@pytest.mark.parametrize("cls, data, message", [
    (CooperativeConfig, {"beta": -1.0}, "beta=-1.0 must be >= 0.0"),
    (CooperativeConfig, {"task_steps": 0}, "task_steps=0 must be >= 1"),
    (GlobalConfig, {"beta": -0.5}, "beta=-0.5 must be >= 0.0"),
    (HyperConfig, {"s2_epochs": -1}, "s2_epochs=-1 must be >= 0"),
])
def test_strategy_options_are_range_checked(cls, data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(cls, data, "search")


def test_s2_epochs_beyond_the_search_is_refused():
    with pytest.raises(ConfigError, match="s2_epochs=3 must be <="):
        Searcher(load_recipe(DEMO, ["search.epochs=2", "search.s2_epochs=3", "data.demo_count=6",
                                    "data.demo_size=32", "data.crop=8"]))


# -- ω_i of strategy hyper comes from the model, not from a table of model names -------------------

def test_models_declare_their_illumination_modules():
    assert TriCoLLSR.illumination_modules == ("regulator",)
    assert CollaBALLSR.illumination_modules == ("attention",)
    assert RUAS.illumination_modules == ("scene",)


def test_a_network_without_illumination_modules_is_one_line_naming_the_setting():
    recipe = recipe_from_dict({
        "name": "s", "network": {"type": "single", "spaces": {"s": "ruas_scene"}, "options": {}},
        "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16},
        "losses": {"lower": {"type": "l1"}, "upper": {"type": "l1"}},
        "search": {"strategy": "hyper", "epochs": 2, "s2_epochs": 1}}, "s.yaml")
    with pytest.raises(ConfigError) as info:
        Searcher(recipe)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "search.illum_modules" in message
