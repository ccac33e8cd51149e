"""Search diagnostics: edge margins, noise, when α settled, the entropy plot; on hand-made
trajectories with known answers and on a real tiny search."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.derive.margins import edge_margins, margin_lines, settled_epoch
from nas_llv.results import edge_entropy, plot_entropy

TINY = {
    "name": "tiny",
    "network": {"type": "ruas", "spaces": {"scene": "ruas_scene", "denoise": "ruas_denoise"}},
    "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16, "batch_size": 1},
    "losses": {"scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
    "search": {"epochs": 3, "steps_per_epoch": 2, "val_batches": 1, "hypergrad": {"type": "first_order"},
               "weights": {"lr": 0.01}, "arch": {"lr": 0.05, "betas": [0.5, 0.999]}},
}


def _frame(x_probs):
    """8 rows, 4 epochs of 2. Edge e1: a wins steadily (final 0.6 / 0.3 / 0.1); edge e2 (x or y)
    has x's probability ``x_probs``."""
    a = [0.40, 0.44, 0.47, 0.50, 0.53, 0.56, 0.585, 0.60]
    b = [0.35, 0.34, 0.33, 0.32, 0.31, 0.305, 0.305, 0.30]
    return pd.DataFrame({
        "step": range(1, 9), "epoch": [1, 1, 2, 2, 3, 3, 4, 4], "module": ["m"] * 8,
        "prob/e1/a": a, "prob/e1/b": b, "prob/e1/c": [1 - p - q for p, q in zip(a, b)],
        "prob/e2/x": x_probs, "prob/e2/y": [1 - p for p in x_probs]})


FLIPPING = [0.55, 0.52, 0.49, 0.51, 0.48, 0.52, 0.47, 0.51]
SETTLING = [0.45, 0.48, 0.49, 0.51, 0.52, 0.53, 0.535, 0.54]


def test_margins_noise_and_settling_on_a_known_trajectory():
    table = edge_margins(_frame(FLIPPING))
    e1, e2 = table.loc["e1"], table.loc["e2"]
    assert (e1["top"], e1["runner_up"]) == ("a", "b")
    assert e1["margin"] == pytest.approx(0.30)
    # the last quarter of 8 rows is 2 rows: gaps 0.585 - 0.305 and 0.60 - 0.30
    assert e1["noise"] == pytest.approx(0.02) and not e1["within_noise"]
    assert e1["settled_epoch"] == 1
    assert (e2["top"], e2["runner_up"]) == ("x", "y")
    assert e2["margin"] == pytest.approx(0.02)
    assert e2["noise"] == pytest.approx(0.08) and e2["within_noise"]  # gaps -0.06, then 0.02
    assert e2["settled_epoch"] == 4  # x lost the lead at row 7 and took it back at row 8
    assert settled_epoch(table) == 4
    lines = margin_lines(_frame(FLIPPING))
    assert "1 of 2 edges chose within noise" in lines and "had not settled" in lines[-1]
    assert [ln.split()[0] for ln in lines[1:3]] == ["e1", "e2"] and lines[2].endswith("within noise")


def test_a_wider_window_sees_more_noise_and_a_settled_run_says_when():
    table = edge_margins(_frame(SETTLING))
    assert table.loc["e2", "settled_epoch"] == 2 and settled_epoch(table) == 2
    assert table.loc["e2", "margin"] == pytest.approx(0.08)
    assert table.loc["e2", "noise"] == pytest.approx(0.01) and not table.loc["e2", "within_noise"]
    whole = edge_margins(_frame(SETTLING), window=1.0)  # gap from -0.10 to 0.08 over the whole run
    assert whole.loc["e2", "noise"] == pytest.approx(0.18) and whole.loc["e2", "within_noise"]
    assert margin_lines(_frame(SETTLING))[-1].startswith("α took 2 of 4 epochs to settle")
    # a margin under the stated floor is within noise whatever its spread
    assert edge_margins(_frame(SETTLING), min_margin=0.1).loc["e2", "within_noise"]
    with pytest.raises(ConfigError, match="window"):
        edge_margins(_frame(SETTLING), window=0)


def test_entropy_is_normalised_to_uniform_and_one_hot():
    frame = _frame(FLIPPING)
    frame.loc[0, ["prob/e1/a", "prob/e1/b", "prob/e1/c"]] = [1 / 3] * 3
    frame.loc[7, ["prob/e1/a", "prob/e1/b", "prob/e1/c"]] = [1.0, 0.0, 0.0]
    h = edge_entropy(frame).set_index(["edge", "step"])["entropy"]
    assert h[("e1", 1)] == pytest.approx(1.0) and h[("e1", 8)] == pytest.approx(0.0)
    p = np.array([0.55, 0.45])
    assert h[("e2", 1)] == pytest.approx(-(p * np.log(p)).sum() / math.log(2))
    assert len(h) == 16


def test_sigmoid_weights_give_margins_as_they_are_and_entropy_of_their_shares():
    """σ(α) (search.relaxation: sigmoid) do not sum to 1: the margin is still top - runner-up, the
    entropy is that of the weights divided by their sum (all ops kept alike: 1; one op alone: 0)."""
    frame = _frame(FLIPPING)
    frame[["prob/e1/a", "prob/e1/b", "prob/e1/c"]] = [0.9, 0.9, 0.9]
    frame.loc[7, ["prob/e1/a", "prob/e1/b", "prob/e1/c"]] = [0.95, 0.0, 0.0]
    frame.loc[7, ["prob/e2/x", "prob/e2/y"]] = [0.9, 0.7]
    assert edge_margins(frame).loc["e2", "margin"] == pytest.approx(0.2)
    h = edge_entropy(frame).set_index(["edge", "step"])["entropy"]
    assert h[("e1", 1)] == pytest.approx(1.0) and h[("e1", 8)] == pytest.approx(0.0)
    p = np.array([0.9, 0.7]) / 1.6
    assert h[("e2", 8)] == pytest.approx(-(p * np.log(p)).sum() / math.log(2))


@pytest.fixture(scope="module")
def search_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("search")
    recipe = root / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(recipe), "--output", str(root / "out")]) == 0
    (run,) = (root / "out").iterdir()
    return run


def test_a_real_search_reports_its_margins(search_run, capsys):
    table = edge_margins(search_run)
    genotype = yaml.safe_load((search_run / "genotype.yaml").read_text())["genotype"]
    assert len(table) == 14 and dict(table["top"]) == genotype  # the margins describe the written choice
    assert ((table["margin"] >= 0) & (table["margin"] <= 1) & (table["noise"] >= 0)).all()
    assert table["settled_epoch"].between(1, 3).all()
    assert main(["derive", str(search_run), "--no-flops", "--draw"]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(r" margin \d", out)) == 14 and ("to settle" in out or "had not settled" in out)
    assert "chose within noise" in out
    png = search_run / "entropy.png"
    assert f"wrote {png}" in out and Image.open(png).size[0] > 300
    h = edge_entropy(search_run)
    # α starts near uniform (DARTS init 1e-3 N(0, 1)) and the first steps leave it close to it
    assert h["entropy"].between(0, 1).all() and h[h["step"] == 1]["entropy"].min() > 0.99


def test_entropy_plot_of_one_module(search_run, tmp_path):
    out = plot_entropy(search_run, tmp_path / "scene.png", module="scene")
    assert Image.open(out).size[1] < Image.open(plot_entropy(search_run, tmp_path / "all.png")).size[1]
    with pytest.raises(ConfigError, match="module 'nope'"):
        plot_entropy(search_run, tmp_path / "x.png", module="nope")


def test_a_training_run_or_a_bare_genotype_prints_no_margins(search_run, tmp_path, capsys):
    bare = tmp_path / "g.yaml"
    bare.write_text((search_run / "genotype.yaml").read_text())
    assert main(["derive", str(bare), "--no-flops"]) == 0
    assert "margin" not in capsys.readouterr().out
