"""Walk the strategy registry: each registered strategy builds from a tiny recipe and one search
step leaves its upper variables (α, ς, the illumination weights) finite and moved."""
from __future__ import annotations

import pytest
import torch

from conftest import RECIPES
from nas_llv.recipe import load_recipe
from nas_llv.registry import STRATEGIES
from nas_llv.runs import Run
from nas_llv.search.level import arch_parameters
from nas_llv.search.loop import Searcher

TINY = ["search.epochs=1", "search.steps_per_epoch=1", "search.val_batches=1", "data.demo_count=4",
        "data.demo_size=32", "data.crop=16", "data.batch_size=1"]
# strategy -> (a shipped recipe it runs on, the overrides that pick it); a new strategy needs a row
RECIPE_OF = {
    "cooperative": ("ruas_demo.yaml", []),
    "global": ("ruas_demo.yaml", ["search.strategy=global"]),
    "independent": ("ruas_demo.yaml", ["search.strategy=independent"]),
    "random": ("ruas_demo.yaml", ["search.strategy=random"]),
    "hyper": ("llsr_demo.yaml", ["search.s2_epochs=0", "data.crop=8"]),
    "cooperative_highlevel": ("ruas_highlevel_demo.yaml", []),
}


def _upper(searcher: Searcher) -> dict[str, torch.Tensor]:
    """Every upper variable: each level's, and every α of the network (random search draws α)."""
    levels = {f"{name}.{k}": v for name, level in searcher.levels.items() for k, v in level.upper.items()}
    return {**levels, **{f"alpha{i}": p for i, p in enumerate(arch_parameters(searcher.net))}}


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_takes_a_finite_step_that_moves_its_upper_variables(name, tmp_path):
    assert name in RECIPE_OF, f"strategy '{name}' has no tiny recipe in RECIPE_OF"
    file, overrides = RECIPE_OF[name]
    recipe = load_recipe(RECIPES / file, [*TINY, *overrides])
    assert recipe.search.strategy == name
    searcher = Searcher(recipe)
    searcher.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    before = {k: v.detach().clone() for k, v in _upper(searcher).items()}
    assert before, f"strategy '{name}' has no upper variables"
    searcher.run(stop_after=1)
    after = _upper(searcher)
    assert all(torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(before[k], after[k].detach()) for k in before), f"{name}: no upper variable moved"
