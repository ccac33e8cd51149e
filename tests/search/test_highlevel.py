"""RUAS for high-level vision: the edge target, the ruas_highlevel network and its retraining
hooks, and the cooperative_highlevel search end to end through the CLI (search, derive, train, eval)."""
from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.retrain.trainer import TrainingObjective
from nas_llv.losses import EdgeLoss, sobel_edges
from nas_llv.results import load_trajectory
from nas_llv.space.genotype import Genotype, load_genotype
from nas_llv.space.models import build_search_network
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import genotype_of

RECIPE = RECIPES / "ruas_highlevel_demo.yaml"
TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1"]
SPACES = {"scene": "ruas_scene", "head": "ruas_highlevel"}


def _genotype() -> Genotype:
    spaces = {k: load_space(v) for k, v in SPACES.items()}
    net = build_search_network({"type": "ruas_highlevel"}, spaces).net
    return Genotype({"type": "ruas_highlevel", "task_channels": 1}, spaces, genotype_of(net))


def test_sobel_edges_match_scikit_image():
    from skimage import color, data, filters

    img = data.astronaut()[100:164, 150:230].astype(np.float64) / 255
    ours = sobel_edges(torch.from_numpy(img).permute(2, 0, 1)[None])[0, 0].numpy()
    np.testing.assert_allclose(ours, filters.sobel(color.rgb2gray(img)), rtol=0, atol=1e-12)


def test_edge_loss_is_least_at_the_target_and_checks_options():
    high = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    loss = EdgeLoss(gain=4.0)
    target = loss.target(high).clamp(1e-6, 1 - 1e-6)
    best = loss({"edge_logits": torch.logit(target)}, {"high": high})
    assert float(best) < float(loss({"edge_logits": torch.zeros_like(target)}, {"high": high}))
    assert float(EdgeLoss(form="l1")({"edge_logits": torch.logit(EdgeLoss().target(high).clamp(1e-9, 1 - 1e-9))},
                                     {"high": high})) < 1e-6
    with pytest.raises(ConfigError, match="form='dice' is not allowed; allowed: bce, l1"):
        EdgeLoss(form="dice")
    with pytest.raises(ConfigError, match="needs ground truth 'high'"):
        loss({"edge_logits": torch.zeros(1, 1, 8, 8)}, {"low": torch.rand(1, 3, 8, 8)})


def test_network_outputs_and_round_trip(tmp_path):
    geno = _genotype()
    assert {k.split(".")[0] for k in geno.choices} == {"scene", "head"}
    loaded = load_genotype(geno.save(tmp_path / "genotype.yaml"))
    net, again = geno.build().eval(), loaded.build().eval()
    again.load_state_dict(net.state_dict())
    y = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = again(y)
        torch.testing.assert_close(out["edges"], net(y)["edges"], rtol=0, atol=0)
    assert out["x"] is out["u"] and out["x"].shape == (2, 3, 16, 16)
    assert out["edge_logits"].shape == (2, 1, 16, 16) and out["edges"].shape == (2, 3, 16, 16)
    assert 0 <= float(out["edges"].min()) and float(out["edges"].max()) <= 1


def test_wrong_spaces_are_one_clear_error():
    spaces = {"scene": load_space("ruas_scene"), "head": load_space("ruas_denoise")}
    with pytest.raises(ConfigError, match="module 'head' needs a space with model type cell_stack"):
        build_search_network({"type": "ruas_highlevel"}, spaces)
    with pytest.raises(ConfigError, match=r"needs spaces \['scene', 'head'\]; missing \['head'\]"):
        build_search_network({"type": "ruas_highlevel"}, {"scene": load_space("ruas_scene")})


def test_task_entry_trains_the_head_alone():
    net = _genotype().build()
    objective = TrainingObjective({"scene": {"type": "ruas_scene"}, "task": {"type": "edge"}}, {"task": 1.0}, net)
    assert objective.partial  # the scene module runs once; the head in entry_outputs
    batch = {"low": torch.rand(1, 3, 16, 16), "high": torch.rand(1, 3, 16, 16)}
    objective(net, batch)[0].backward()
    assert all(p.grad is None for p in net.scene.parameters())
    assert all(p.grad is not None for p in net.head.parameters())


def test_search_derive_train_eval_end_to_end(tmp_path):
    args = ["search", str(RECIPE), *TINY, "search.epochs=2", "search.steps_per_epoch=1", "search.val_batches=1",
            "search.arch.lr=0.05", "--output", str(tmp_path / "s")]
    assert main(args) == 0
    (run,) = (tmp_path / "s").iterdir()
    frame = pd.read_csv(run / "trajectory.csv")
    assert list(frame["module"]) == ["scene", "head"] * 2  # Alg. 1: α_s/ω_s, then α_t/ω_t
    probs = [c for c in frame.columns if c.startswith("prob/")]
    assert any(c.startswith("prob/scene.") for c in probs) and any(c.startswith("prob/head.e1/") for c in probs)
    assert "loss/task.edge" in frame.columns  # the head's task loss, logged on its level
    tidy = load_trajectory(run)
    head = tidy[tidy["edge"].str.startswith("head.")]
    assert set(head["edge"]) == {"head.e1", "head.e2", "head.e3"}
    assert head.groupby("edge")["prob"].max().min() > 0.1 + 1e-3  # α of the head moved from uniform
    alphas = torch.load(run / "checkpoints/last.pt", weights_only=False)["network"]
    assert max(float(v.abs().max()) for k, v in alphas.items() if k.startswith("head.") and "alphas" in k) > 0.02

    assert main(["derive", str(run), "--no-flops"]) == 0
    geno = load_genotype(run / "genotype.yaml")
    assert geno.network["type"] == "ruas_highlevel" and set(geno.spaces) == {"scene", "head"}

    train = ["train", str(run), "--recipe", str(RECIPE), *TINY, "train.steps=2", "train.val_every=1",
             "train.val_batches=1", "train.checkpoint_every=2", "--output", str(tmp_path / "t")]
    assert main(train) == 0
    (trained,) = (tmp_path / "t").iterdir()
    rows = pd.read_csv(trained / "trajectory.csv")
    assert {"loss/l1", "loss/ssim", "loss/task"} <= set(rows.columns) and rows["metric/psnr"].notna().all()

    pairs = tmp_path / "pairs"
    for sub, value in (("high", 160), ("low", 40)):
        (pairs / sub).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), value, np.uint8)).save(pairs / sub / "a.png")
    assert main(["eval", str(trained / "model.pt"), "--data", str(pairs), "--lpips-net", "none", "--repeats", "1",
                 "--warmup", "0", "--device", "cpu", "-o", str(tmp_path / "e"), "-q"]) == 0
    (row,) = csv.DictReader((tmp_path / "e" / "metrics.csv").open())
    assert float(row["psnr"]) > 0
