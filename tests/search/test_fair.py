"""FairDARTS in the search: the zero-one loss (search/extensions/fair.py) against a hand computation, its place
in a level's upper loss, the recipe keys, and a short real search with the sigmoid relaxation."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.recipe import load_recipe, recipe_from_dict
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.search.extensions.fair import ZeroOne
from nas_llv.search.level import attach_penalty
from nas_llv.search.level import Level, named
from nas_llv.space.supernet import ArchParams, arch_parameters

ALPHAS = {"a": [0.0, 2.0, -1.0], "b": [3.0, 0.5]}


class _ArchLevel(Level):
    """A level whose upper variables are the α of ``module`` (no objectives: only penalties are used)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.name, self.module = "arch", module
        self.upper, self.lower = named(module, arch_parameters(module)), {}


def _arch() -> ArchParams:
    arch = ArchParams("sigmoid")
    for label, values in ALPHAS.items():
        arch.add(label, ("conv_1x1", "conv_3x3", "skip")[:len(values)])
        with torch.no_grad():
            arch[label].copy_(torch.tensor(values))
    return arch


def _sigmoid(a: float) -> float:
    return 1 / (1 + math.exp(-a))


def test_zero_one_value_and_gradient_by_hand():
    """L = -w/N Σ (σ_i - 1/2)², dL/dα_i = -w/N · 2 (σ_i - 1/2) σ_i (1 - σ_i), over all N = 5 entries."""
    level = _ArchLevel(_arch())
    level.penalties = (ZeroOne(10.0),)
    values = [a for v in ALPHAS.values() for a in v]
    s = [_sigmoid(a) for a in values]
    want = -10.0 / 5 * sum((si - 0.5) ** 2 for si in s)
    want_grad = [-10.0 / 5 * 2 * (si - 0.5) * si * (1 - si) for si in s]
    loss = level.penalty({})
    assert float(loss.detach()) == pytest.approx(want, rel=1e-6)
    assert level.penalty_values == {"zero_one": pytest.approx(want, rel=1e-6)}
    grads = torch.autograd.grad(loss, list(level.upper.values()))
    assert torch.cat(grads).tolist() == pytest.approx(want_grad, rel=1e-5)


def test_zero_one_reads_the_hypergradients_alpha():
    """The penalty is a function of the α the hypergradient passes (here all 0: σ = 1/2, L = 0)."""
    level = _ArchLevel(_arch())
    level.penalties = (ZeroOne(10.0),)
    zeros = {name: torch.zeros_like(p) for name, p in level.upper.items()}
    assert float(level.penalty(zeros)) == 0.0


def test_attach_penalty_skips_levels_without_alpha():
    with_alpha, without = _ArchLevel(_arch()), _ArchLevel(torch.nn.Linear(2, 2))
    assert attach_penalty({"a": with_alpha, "b": without}, ZeroOne(1.0)) == ["a"]
    assert [p.name for p in with_alpha.penalties] == ["zero_one"] and without.penalties == ()


@pytest.mark.parametrize("search, message", [
    ({"zero_one": 10.0}, "search: zero_one=10.0 needs relaxation: sigmoid"),
    ({"relaxation": "sigmoid", "zero_one": -1.0}, "search: zero_one=-1.0 must be >= 0"),
    ({"relaxation": "fair"}, "search.relaxation: 'fair' is not allowed; allowed: softmax, sigmoid"),
    ({"max_skip": -1}, "search: max_skip=-1 must be >= 0"),
    ({"strategy": "random", "max_skip": 2}, "search: max_skip does not apply to strategy random"),
])
def test_bad_remedy_keys_name_the_key_and_what_is_allowed(search, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict({"search": search}, "r.yaml")


FAIR = ["device=cpu", "search.epochs=2", "data.crop=16", "search.relaxation=sigmoid", "search.zero_one=10.0"]


def test_a_sigmoid_search_with_the_zero_one_loss(tmp_path):
    overrides = [*FAIR, "search.max_skip=1"]
    assert main(["search", str(RECIPES / "ruas_demo.yaml"), "--output", str(tmp_path), *overrides]) == 0
    (run,) = tmp_path.iterdir()
    config = yaml.safe_load((run / "config.yaml").read_text())["search"]
    assert (config["relaxation"], config["zero_one"], config["max_skip"]) == ("sigmoid", 10.0, 1)
    wide = pd.read_csv(run / "trajectory.csv")
    penalty = wide["penalty/zero_one"]
    assert penalty.notna().all() and (penalty < 0).all() and (penalty > -10.0 / 4).all()
    # the prob/ columns hold σ(α): the last row's against the α of the last checkpoint
    alpha = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["network"]["scene.arch.alphas.scene__c1_d"]
    last = wide[[c for c in wide.columns if c.startswith("prob/scene.c1_d/")]].iloc[-1].to_numpy()
    assert last.tolist() == pytest.approx(torch.sigmoid(alpha).tolist(), rel=1e-6)
    geno = yaml.safe_load((run / "genotype.yaml").read_text())
    assert geno["meta"]["max_skip"]["max"] == 1
    for module in ("scene", "denoise"):
        assert sum(op == "skip" for label, op in geno["genotype"].items() if label.startswith(module)) <= 1
    assert (run / "genotype_best.yaml").is_file()


def test_a_resumed_sigmoid_search_equals_an_uninterrupted_one(tmp_path):
    """The relaxation comes back from the run's config: the resumed run mixes (and starts α) as the first did."""
    def searcher(recipe, run):
        s = Searcher(recipe)
        s.attach(run)
        return s

    recipe = load_recipe(RECIPES / "ruas_demo.yaml", FAIR)
    whole = searcher(recipe, Run.create(recipe.to_dict(), recipe.name, tmp_path / "a"))
    assert whole.run() is True
    part = searcher(recipe, Run.create(recipe.to_dict(), recipe.name, tmp_path / "b"))
    assert part.run(stop_after=2) is False
    part.attached_run.close()
    run = Run.open(part.attached_run.dir)
    resumed = searcher(recipe_from_dict(run.config(), "config.yaml"), run)
    resumed.load_state_dict(run.load_checkpoint())
    assert resumed.run() is True
    trajectories = [pd.read_csv(d / "trajectory.csv").drop(columns="seconds") for d in (whole.attached_run.dir, run.dir)]
    pd.testing.assert_frame_equal(*trajectories)
    assert "penalty/zero_one" in trajectories[0]
