"""``nas-llv derive RUN --max-skip M`` (derive/rederive.py) on a tiny real search run: the genotype of
the final α with at most M skip ops per cell, written beside genotype.yaml; and its bad input."""
from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from conftest import RECIPES
from nas_llv.cli import main

TINY = ["device=cpu", "search.epochs=2", "data.crop=16", "search.max_skip=0"]
# hand-made α for four edges of the scene cell: each prefers skip (index 6), c1_d most, c2_r least;
# each one's runner-up is conv_3x3 (index 1)
PREFERS_SKIP = {"c1_d": 5.0, "c1_r": 4.0, "c2_d": 3.0, "c2_r": 2.0}


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    """A 2-epoch demo search that capped its written genotypes at 0 skip ops per cell."""
    root = tmp_path_factory.mktemp("search")
    assert main(["search", str(RECIPES / "ruas_demo.yaml"), "--output", str(root), *TINY]) == 0
    (run,) = root.iterdir()
    return run


def _genotype(path):
    return yaml.safe_load(path.read_text())


def test_derive_max_skip_from_the_final_alpha_agrees_with_the_search(search_run, capsys):
    written = (search_run / "genotype.yaml").read_text()
    assert main(["derive", str(search_run), "--max-skip", "0", "--no-flops"]) == 0
    out = capsys.readouterr().out
    path = search_run / "genotype_max_skip_0.yaml"
    assert f"wrote {path}: at most 0 skip ops per cell" in out
    again, searched = _genotype(path), yaml.safe_load(written)
    assert again["genotype"] == searched["genotype"]  # the search capped its genotype.yaml the same way
    assert again["meta"]["max_skip"] == searched["meta"]["max_skip"]
    assert "skip" not in again["genotype"].values()
    for label, change in again["meta"]["max_skip"]["changed"].items():
        assert f"{label:18s} skip -> {change['to']}" in out
    assert (search_run / "genotype.yaml").read_text() == written  # never overwritten


def test_derive_max_skip_keeps_the_strongest_skips_of_a_hand_made_alpha(search_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(search_run, run)
    path = run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    for edge, skip in PREFERS_SKIP.items():
        alpha = torch.zeros(7)
        alpha[1], alpha[6] = 1.0, skip
        state["network"][f"scene.arch.alphas.scene__{edge}"] = alpha
    torch.save(state, path)
    assert main(["derive", str(run), "--max-skip", "2", "--no-flops"]) == 0
    geno = _genotype(run / "genotype_max_skip_2.yaml")
    assert [geno["genotype"][f"scene.{e}"] for e in PREFERS_SKIP] == ["skip", "skip", "conv_3x3", "conv_3x3"]
    assert geno["meta"]["max_skip"] == {"max": 2, "changed": {"scene.c2_d": {"from": "skip", "to": "conv_3x3"},
                                                              "scene.c2_r": {"from": "skip", "to": "conv_3x3"}}}
    out = capsys.readouterr().out
    assert "2 edges changed:" in out and "scene.c2_r         skip -> conv_3x3" in out
    assert main(["derive", str(run), "--max-skip", "4", "--no-flops"]) == 0  # the cell is under this cap
    assert _genotype(run / "genotype_max_skip_4.yaml")["meta"]["max_skip"]["changed"] == {}


def test_bad_max_skip_input_is_one_line(search_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["derive", str(search_run), "--max-skip", "-1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --max-skip: must be >= 0, got -1" in err
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(search_run / "genotype.yaml", bare)
    assert main(["derive", str(bare), "--max-skip", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoints/last.pt" in err
    assert not (bare / "genotype_max_skip_1.yaml").exists()
