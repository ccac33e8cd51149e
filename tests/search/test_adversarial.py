"""CollaBA's adversarial term: one discriminator step and one generator step move their losses the
right way on a tiny batch; the term's weight is a learned hyper-variable in strategy ``hyper``, whose
iterations (and ``nas-llv train``'s) step the discriminator with its own optimizer."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.losses import AdversarialLoss, UNetDiscriminator, build_loss, step_discriminators
from nas_llv.registry import LOSSES

ROOT = Path(__file__).resolve().parents[2]
HW = 16


def test_discriminator_heads_and_backward():
    d = UNetDiscriminator(width=4)
    x = torch.rand(2, 3, HW, 12, requires_grad=True)
    glo, pat = d(x)
    assert glo.shape == (2, 1) and pat.shape == (2, 1, HW, 12)
    (glo.mean() + pat.mean()).backward()
    assert x.grad is not None and all(p.grad is not None for p in d.parameters())


def test_registered_and_checked():
    assert "adversarial" in LOSSES
    loss = build_loss({"type": "adversarial", "width": 4})
    out = loss({"x": torch.rand(1, 3, 8, 8)}, {"high": torch.rand(1, 3, 8, 8)})
    value = out[0] if isinstance(out, tuple) else out
    assert value.ndim == 0 and torch.isfinite(value)
    with pytest.raises(ConfigError, match="width must be an integer >= 1"):
        AdversarialLoss(width=0)


def test_one_step_moves_the_discriminator_and_generator_losses_the_right_way():
    torch.manual_seed(0)
    adv = AdversarialLoss(width=8, lr=1e-3)
    gen = nn.Conv2d(3, 3, 3, padding=1)
    low, high = torch.rand(2, 3, HW, HW) * 0.2, torch.rand(2, 3, HW, HW)
    batch = {"high": high}

    def d_loss():
        with torch.no_grad():
            return float(adv.discriminator_loss(gen(low), high))

    def g_loss():
        return adv({"x": gen(low)}, batch)

    d0, g0 = d_loss(), float(g_loss().detach())
    assert step_discriminators(nn.ModuleDict({"adv": adv})) == {"adv": pytest.approx(d0, rel=1e-4)}
    d1, g1 = d_loss(), float(g_loss().detach())
    assert d1 < d0   # the discriminator separates real and fake better
    assert g1 > g0   # so the generator's term (fake labelled real) grows
    opt = torch.optim.SGD(gen.parameters(), lr=1e-2)
    opt.zero_grad()
    g_loss().backward()
    opt.step()
    assert float(g_loss().detach()) < g1  # a generator step on its term fools the fixed discriminator more
    assert not adv.discriminator.training
    adv._last = None
    assert step_discriminators(adv) == {}  # nothing seen since the last step: no step


def _newest(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda p: p.stat().st_mtime)


TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=8", "data.batch_size=1"]


def test_hyper_learns_the_adversarial_weight_and_steps_the_discriminator(tmp_path):
    terms = "{l1: {type: l1}, adversarial: {type: adversarial, width: 4}}"
    assert main(["search", str(ROOT / "recipes/llsr_demo.yaml"), "--output", str(tmp_path / "s"),
                 "search.epochs=2", "search.s2_epochs=0", "search.steps_per_epoch=2", "search.val_batches=1",
                 *TINY, f"losses.lower.terms={terms}"]) == 0
    run = _newest(tmp_path / "s")
    frame = pd.read_csv(run / "trajectory.csv")
    assert {"hyper/adversarial", "coef/adversarial", "discriminator/terms.adversarial"} <= set(frame.columns)
    assert frame["hyper/adversarial"].nunique() > 1  # ϱ of the adversarial term is learned
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    keys = str(state)
    assert "discriminator" in keys  # the discriminator's weights are checkpointed with the losses


def test_train_steps_the_discriminator(tmp_path):
    genotype = tmp_path / "search"
    assert main(["search", str(ROOT / "recipes/llsr_demo.yaml"), "--output", str(genotype),
                 "search.epochs=1", "search.s2_epochs=0", "search.steps_per_epoch=1", "search.val_batches=1",
                 *TINY]) == 0
    assert main(["train", str(_newest(genotype)), "--recipe", str(ROOT / "recipes/llsr_demo_train.yaml"),
                 "--output", str(tmp_path / "train"), "train.steps=2", "train.val_every=2", "train.val_batches=1",
                 "train.checkpoint_every=2", *TINY[:-1], "data.batch_size=2",
                 "losses.adv={type: adversarial, width: 4}", "train.objective={l1: 1.0, adv: 0.1}"]) == 0
    frame = pd.read_csv(_newest(tmp_path / "train") / "trajectory.csv")
    column = [c for c in frame.columns if c.startswith("discriminator/")]
    assert column and frame[column[0]].notna().any()
