"""docs/search.md's account of why α moved by 1e-3: Adam moves each α by about lr per arch step
whatever the loss's scale, so lr x arch steps decides how far α travels, not the upper loss's
scale (nor gradient clipping, off for α)."""
from __future__ import annotations

import torch

from conftest import TINY_RUAS, tiny_searcher

TINY = {
    **TINY_RUAS,
    "search": {"epochs": 1, "steps_per_epoch": 6, "val_batches": 1, "checkpoint_every": 100,
               "hypergrad": {"type": "first_order"},
               "weights": {"lr": 0.01, "schedule": "constant", "grad_clip": None},  # clipping is not scale-free
               "arch": {"lr": 0.01, "betas": [0.5, 0.999], "weight_decay": 0.0, "schedule": "constant"}},
}


def _scaled(scale: float) -> dict:
    """The tiny recipe with both modules' losses multiplied by ``scale``."""
    losses = {name: {"terms": {name: spec}, "coefficients": {name: scale}} for name, spec in TINY["losses"].items()}
    return {**TINY, "losses": losses}


def _alphas(base: dict, root, **search) -> torch.Tensor:
    s = tiny_searcher(base, root, **search)
    s.run()
    return torch.cat([p.detach().flatten() for n, p in s.net.named_parameters() if ".alphas." in n])


def _initial(base: dict, root) -> torch.Tensor:
    s = tiny_searcher(base, root)
    return torch.cat([p.detach().flatten() for n, p in s.net.named_parameters() if ".alphas." in n])


def test_the_loss_scale_does_not_move_alpha_further(tmp_path):
    start = _initial(TINY, tmp_path / "init")
    plain = _alphas(TINY, tmp_path / "plain") - start
    scaled = _alphas(_scaled(100.0), tmp_path / "scaled") - start
    assert plain.abs().max() > 0.01  # α moved: 6 steps of each level at lr 0.01
    # the same travel up to Adam's ε (1e-8), which damps the steps of α whose gradients are that small;
    # measured here: 10 % of the largest travel at most, the same for 100x and 1e4x
    assert torch.allclose(scaled, plain, atol=0.15 * float(plain.abs().max()))
    assert 0.8 < float(scaled.abs().median() / plain.abs().median()) < 1.25


def test_alpha_travels_about_lr_per_step_and_lr_is_the_knob(tmp_path):
    start = _initial(TINY, tmp_path / "init")
    small = (_alphas(TINY, tmp_path / "small") - start).abs()
    big = (_alphas(TINY, tmp_path / "big", arch={**TINY["search"]["arch"], "lr": 0.1}) - start).abs()
    steps = TINY["search"]["steps_per_epoch"]
    # no α moves further than a few lr per step (Adam's normalised step), and most move most of it
    assert small.max() <= 2 * 0.01 * steps and big.max() <= 2 * 0.1 * steps
    assert small.median() > 0.3 * 0.01 * steps
    # ten times the lr: about ten times the travel
    assert 5 < float(big.median() / small.median()) < 15
