"""Recipes: every shipped recipe loads and round-trips, checking does not depend on what was
imported before, and each variant section takes only its own variant's keys."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import RECIPES
from nas_llv.config import ConfigError
from nas_llv.recipe import load_recipe, recipe_from_dict

SHIPPED = sorted(p.name for p in RECIPES.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load_and_round_trip(name):
    recipe = load_recipe(RECIPES / name)
    again = recipe_from_dict(yaml.safe_load(yaml.safe_dump(recipe.to_dict())), name)
    assert again == recipe


def test_checking_does_not_depend_on_import_order():
    """A fresh interpreter that imports only the recipe module knows every strategy."""
    code = ("from nas_llv.recipe import recipe_from_dict\n"
            "r = recipe_from_dict({'name': 'x'})\n"
            "print(r.search.strategy, r.network.variant, r.data.demo_count)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["cooperative", "ruas", "8"]


@pytest.mark.parametrize("data, message", [
    ({"data": {"type": "folder", "root": "d", "demo_count": 4}}, "data.demo_count: belongs to dataset demo, demo_sr"),
    ({"network": {"type": "single", "spaces": {"n": "ruas_cell"}, "options": {"variant": "ruas"}}},
     "network.options.variant: belongs to network ruas, not 'single'"),
    ({"network": {"options": {"variant": "ruas_x"}}}, "variant='ruas_x' is not allowed; allowed: ruas_s, ruas, ruas_a"),
    ({"search": {"strategy": "greedy"}}, "search.strategy: unknown strategy 'greedy'"),
    ({"search": {"strategy": "hyper", "beta": 1.0}}, "search.beta: belongs to strategy cooperative, cooperative_highlevel, global, random, not 'hyper'"),
    ({"search": {"strategy": "hyper", "scene_steps": 2}}, "search.scene_steps: belongs to strategy cooperative, cooperative_highlevel, not 'hyper'"),
    ({"search": {"strategy": "independent", "s2_epochs": 1}}, "search.s2_epochs: belongs to strategy hyper, not 'independent'"),
    ({"search": {"strategy": "cooperative", "beta": -1}}, "beta=-1.0 must be >= 0"),
])
def test_keys_of_another_variant_are_one_line_errors(data, message):
    with pytest.raises(ConfigError) as info:
        recipe_from_dict({"name": "x", **data}, "r.yaml")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_recipe_written_before_the_variant_sections_loads_unchanged():
    old = {"name": "old", "data": {"type": "demo", "demo_count": 6, "demo_size": 64, "crop": 32},
           "network": {"type": "ruas", "options": {"variant": "ruas_s"}},
           "search": {"strategy": "cooperative", "beta": 0.5, "scene_steps": 2}}
    recipe = recipe_from_dict(old, "old.yaml")
    assert (recipe.data.demo_count, recipe.network.variant, recipe.search.beta, recipe.search.scene_steps) == (6, "ruas_s", 0.5, 2)
    assert recipe.to_dict()["search"]["beta"] == 0.5 and recipe.to_dict()["data"]["demo_size"] == 64


def test_the_old_key_network_fuse_reads_as_merge_edges_with_a_warning(caplog):
    """Recipes and run folders' config.yaml written before the rename still load (and resume)."""
    recipe = recipe_from_dict({"name": "old", "network": {"fuse": False}}, "config.yaml")
    assert recipe.network.merge_edges is False and "fuse" not in recipe.to_dict()["network"]
    assert "config.yaml: network.fuse: is the old spelling of 'merge_edges'" in caplog.text
    with pytest.raises(ConfigError, match="old spelling of 'merge_edges', which is given too"):
        recipe_from_dict({"name": "x", "network": {"fuse": False, "merge_edges": True}}, "r.yaml")
