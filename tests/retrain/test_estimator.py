"""RUAS_A's noise estimator, trained by `nas-llv train` (objective entry ``estimator``, loss
``noise_level``, data ``noisy_demo``): the data, the loss, the hooks, and the gate it learns."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from torch import nn

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.data.demo import SOURCE_NAMES, _crop_resize, source_image
from nas_llv.data.noisy import add_noise, noisy_pairs
from nas_llv.retrain.trainer import Trainer
from nas_llv.export.modelfile import load_model, save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.recipe import load_recipe, recipe_from_dict
from nas_llv.registry import DATASETS, LOSSES
from nas_llv.runs import Run
from nas_llv.space.models.networks import RUAS

# Gaussian noise std of the held-out images: the gate (level = mean|θ| >= 0.035) should stay shut
# at 0.02 (mean absolute noise ≈ 0.8σ = 0.016) and open at 0.1 (≈ 0.08); the boundary is σ ≈ 0.044.
QUIET, LOUD = 0.02, 0.1

RECIPE = {
    "name": "estimator",
    "data": {"type": "noisy_demo", "noisy_count": 48, "noisy_size": 48, "crop": 24, "batch_size": 8,
             "val_ratio": 0.125},
    "losses": {"estimator": {"type": "noise_level"}},
    "train": {"steps": 800, "val_every": 800, "val_batches": 1, "checkpoint_every": 800,
              "objective": {"estimator": 1.0}, "variant": "ruas_a", "optim": {"lr": 3.0e-3}},
}


def _trainer(tmp_path, width: int = 16, **train) -> Trainer:
    data = {**RECIPE, "train": {**RECIPE["train"], **train}}
    recipe = recipe_from_dict(data, "estimator.yaml")
    geno = ruas_genotype("cvpr", "ruas")
    geno = dataclasses.replace(geno, network={**geno.network, "estimator_width": width})
    trainer = Trainer(recipe, geno)
    trainer.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return trainer


def _held_out(sigma: float) -> torch.Tensor:
    """Fresh 64x64 crops of the eight photographs (a seed the training data does not use, a size it
    does not have) with fresh Gaussian noise of std ``sigma``: (8, 3, 64, 64)."""
    g = torch.Generator().manual_seed(1234)
    clean = torch.stack([_crop_resize(source_image(name), 64, g) for name in SOURCE_NAMES])
    return add_noise(clean, sigma, generator=torch.Generator().manual_seed(99))


class _Identity(nn.Module):
    """A scene module that leaves y as it is (u = y), so the gate sees the held-out images."""

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"u": y, "t": torch.ones_like(y)}


def _gate(net: RUAS, y: torch.Tensor) -> torch.Tensor:
    """RUAS_A's gate decisions on ``y`` taken as u: (N,) bool, read off the forward's output."""
    gated = RUAS(_Identity(), net.denoise, net.estimator, net.threshold).eval()
    with torch.no_grad():
        out = gated(y)
        opened = ~(out["x"] == y).flatten(1).all(1)
    assert torch.equal(opened, out["noise"] >= net.threshold)
    return opened


def test_trained_estimator_opens_the_gate_on_noisy_images_and_keeps_it_shut_on_clean_ones(tmp_path):
    trainer = _trainer(tmp_path)
    quiet, loud = _held_out(QUIET), _held_out(LOUD)
    before = _gate(trainer.net, quiet), _gate(trainer.net, loud)
    # untrained, the gate does not tell the two noise levels apart
    assert torch.equal(before[0], before[1])
    assert trainer.run() is True
    assert not _gate(trainer.net, quiet).any()
    assert _gate(trainer.net, loud).all()
    assert not _gate(trainer.net, _held_out(0.0)).any()
    with torch.no_grad():
        levels = {s: trainer.net.estimator.level(_held_out(s)).mean().item() for s in (QUIET, LOUD)}
    # the level estimates the mean absolute noise, 0.8σ
    assert levels[QUIET] < 0.035 < levels[LOUD]
    assert levels[LOUD] == pytest.approx(0.8 * LOUD, rel=0.35)


def test_estimator_entry_trains_the_estimator_only_and_silences_the_warning(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        trainer = _trainer(tmp_path, width=4, steps=2, val_every=2, checkpoint_every=2)
    assert "noise estimator" not in caplog.text
    net = trainer.net
    frozen = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("estimator.")}
    est = {k: v.clone() for k, v in net.estimator.state_dict().items()}
    assert trainer.run() is True
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, net.estimator.state_dict()[k]) for k, v in est.items())
    assert RUAS.random_init_warnings(net, ["scene", "task"])  # without the entry it still warns


def test_init_from_a_ruas_model_file_adds_a_fresh_estimator(tmp_path, caplog):
    """A RUAS model file has no estimator; trained as ruas_a with an estimator entry, it keeps its
    scene module and denoiser and gets a new estimator. Without the entry the file must fit exactly."""
    geno = ruas_genotype("cvpr", "ruas")
    source = geno.build()
    path = save_model(tmp_path / "ruas.pt", geno, source, {}, {})
    recipe = recipe_from_dict({**RECIPE, "train": {**RECIPE["train"], "steps": 1, "val_every": 1}}, "e.yaml")
    with caplog.at_level(logging.INFO):
        trainer = Trainer(recipe, geno, {}, init=path)
    assert "has no estimator module" in caplog.text
    assert all(torch.equal(v, trainer.net.state_dict()[k]) for k, v in source.state_dict().items())
    other = recipe_from_dict({**RECIPE, "losses": {"tv": {"type": "tv"}},
                              "train": {**RECIPE["train"], "objective": {"tv": 1.0}}}, "e.yaml")
    with pytest.raises(ConfigError, match="do not fit.*missing.*estimator"):
        Trainer(other, geno, {}, init=path)


def test_estimator_entry_needs_an_estimator(tmp_path):
    with pytest.raises(ConfigError, match="estimator trains the estimator module.*variant ruas"):
        _trainer(tmp_path, width=4, variant="ruas")


def test_noisy_demo_is_seeded_and_records_its_noise():
    a, b = noisy_pairs(count=16, size=32, seed=3), noisy_pairs(count=16, size=32, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.lows, b.lows))
    assert not torch.equal(a.lows[0], noisy_pairs(count=16, size=32, seed=4).lows[0])
    for low, high, p in zip(a.lows, a.highs, a.params):
        assert low.shape == high.shape == (3, 32, 32) and 0 <= low.min() and low.max() <= 1
        if p["sigma"] == 0:
            assert torch.equal(low, high)
    built = DATASETS.build({"type": "noisy_demo", "noisy_count": 4, "noisy_size": 16, "sigma_min": 0.05,
                            "sigma_max": 0.05, "clean_ratio": 0.0})
    assert [p["sigma"] for p in built.params] == pytest.approx([0.05] * 4)
    clean = torch.full((3, 256, 256), 0.5)
    assert (add_noise(clean, 0.05, generator=torch.Generator().manual_seed(0)) - clean).std().item() == \
        pytest.approx(0.05, rel=0.02)


def test_noise_level_loss_regresses_the_absolute_noise():
    high = torch.full((2, 3, 4, 4), 0.5)
    low = high.clone()
    low[0] += 0.1
    theta = torch.full((2, 3, 4, 4), -0.1)  # its sign does not matter
    loss = LOSSES.build("noise_level")
    assert loss({"noise_map": theta}, {"low": low, "high": high}).item() == pytest.approx(0.01 / 2)
    level = LOSSES.build({"type": "noise_level", "mode": "level"})
    assert level({"noise_map": theta}, {"low": low, "high": high}).item() == pytest.approx(0.01 / 2)
    theta[0, :, :2] = -0.3  # image 0: map error 0.2 on half its pixels, level error 0.1
    assert loss({"noise_map": theta}, {"low": low, "high": high}).item() == pytest.approx((0.04 / 2 + 0.01) / 2)
    assert level({"noise_map": theta}, {"low": low, "high": high}).item() == pytest.approx((0.01 + 0.01) / 2)
    with pytest.raises(ConfigError, match="mode"):
        LOSSES.build({"type": "noise_level", "mode": "median"})
    with pytest.raises(ConfigError, match="ground truth"):
        loss({"noise_map": theta}, {"low": low})


def test_estimator_recipe_trains_a_ruas_genotype_as_ruas_a(tmp_path, caplog):
    recipe = RECIPES / "ruas_a_estimator_train.yaml"
    loaded = load_recipe(recipe)
    assert loaded.train.variant == "ruas_a" and dict(loaded.train.objective) == {"estimator": 1.0}
    assert loaded.data.type == "noisy_demo" and loaded.losses["estimator"]["type"] == "noise_level"
    genotype = str(ruas_genotype("cvpr", "ruas").save(tmp_path / "genotype.yaml"))
    tiny = ["data.noisy_count=4", "data.noisy_size=16", "data.crop=8", "data.batch_size=2", "train.steps=2",
            "train.val_every=1", "train.val_batches=1"]
    with caplog.at_level(logging.WARNING):
        assert main(["train", genotype, "--recipe", str(recipe), "--output", str(tmp_path / "out"), *tiny]) == 0
    assert "noise estimator" not in caplog.text
    net, _ = load_model(next((tmp_path / "out").iterdir()) / "model.pt")
    assert net.variant == "ruas_a"
