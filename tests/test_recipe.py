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


# -- an override that switches a variant drops the old variant's keys -------------------------------

SWITCHABLE = {"name": "r", "data": {"type": "demo", "demo_count": 6, "demo_size": 64, "crop": 32},
              "network": {"type": "ruas", "options": {"variant": "ruas_s"}},
              "losses": {"task": {"type": "ruas_denoise", "tv_weight": 2.0},
                         "mix": {"terms": {"a": {"type": "ssim", "win_size": 7}}}},
              "search": {"strategy": "cooperative", "beta": 0.5, "hypergrad": {"type": "finite_difference", "r": 0.02}}}


def _switched(tmp_path, caplog, overrides):
    import logging

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(SWITCHABLE))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nas_llv"):
        recipe = load_recipe(path, overrides)
    return recipe, [r.getMessage() for r in caplog.records if "switched from" in r.getMessage()]


@pytest.mark.parametrize("overrides, kind, key, old, new, dropped", [
    (["data.type=folder", "data.root=photos"], "dataset", "data.type", "demo", "folder", "demo_count, demo_size"),
    (["network.type=single", "network.spaces={n: ruas_cell}"], "network", "network.type", "ruas", "single", "variant"),
    (["search.strategy=hyper"], "strategy", "search.strategy", "cooperative", "hyper", "beta"),
    (["search.hypergrad.type=implicit_cg"], "hypergradient method", "search.hypergrad.type", "finite_difference",
     "implicit_cg", "r"),
    (["losses.task.type=l1"], "loss", "losses.task.type", "ruas_denoise", "l1", "tv_weight"),
    (["losses.mix.terms.a.type=l1"], "loss", "losses.mix.terms.a.type", "ssim", "l1", "win_size"),
])
def test_switching_a_variant_drops_the_keys_only_the_old_one_takes(tmp_path, caplog, overrides, kind, key, old, new,
                                                                   dropped):
    recipe, said = _switched(tmp_path, caplog, overrides)
    assert said == [f"{tmp_path / 'r.yaml'}: {key} switched from {old} to {new}: dropped {dropped} "
                    f"({kind} {old}'s keys, which {new} does not take)"]
    written = recipe.to_dict()
    assert written["data"]["crop"] == 32  # a key every dataset takes stays
    assert written["losses"]["task"].get("tv_weight") == (None if key == "losses.task.type" else 2.0)
    if key == "data.type":
        assert recipe.data.root == "photos" and "demo_count" not in written["data"]


def test_the_old_variants_keys_are_kept_where_the_new_one_takes_them(tmp_path, caplog):
    recipe, said = _switched(tmp_path, caplog, ["data.type=demo_sr"])  # demo_sr takes demo's keys
    assert said == [] and (recipe.data.demo_count, recipe.data.demo_size) == (6, 64)


@pytest.mark.parametrize("overrides, message", [
    (["data.type=folder", "data.root=p", "data.demo_count=3"], "data.demo_count: belongs to dataset demo, demo_sr"),
    (["data={type: folder, root: p, demo_size: 8}"], "data.demo_size: belongs to dataset demo, demo_sr"),
    (["search.hypergrad.type=implicit_cg", "search.hypergrad.r=0.1"], "search.hypergrad.r: belongs to hypergradient"),
    (["data.type=folder", "data.root=p", "data.rot=3"], "data: unknown key 'rot'"),
])
def test_a_key_given_with_the_switch_is_still_checked(tmp_path, caplog, overrides, message):
    with pytest.raises(ConfigError) as info:
        _switched(tmp_path, caplog, overrides)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not [r for r in caplog.records if "switched from" in r.getMessage()]  # the error is the one line
