"""CollaBA's adversarial term (Eq. 10): a spectral-normalised U-Net global-patch discriminator.

``adversarial`` is a registered loss. Called as ``loss(out, batch)`` it returns the generator's
term, non-saturating BCE with the output labelled real, for both heads:
``BCE(D_glo(x), 1) + BCE(D_pat(x), 1)`` (x the output, (N, 3, H, W) in [0, 1]). It owns its
discriminator and that discriminator's optimizer; ``step_discriminators(module)`` takes one
discriminator step for every adversarial term under ``module`` on the pair the term saw last:
``BCE(D(high), 1) + BCE(D(x.detach()), 0)`` per head. Strategy ``hyper`` calls it after each
iteration's lower steps, ``nas-llv train`` after each weight step.

Readings of CollaBA: Eq. (10) writes both players' objective as one signed sum of log-likelihoods;
we use the usual non-saturating pair above. CollaBA's BIA learning (Eq. 12) makes the
discriminator the follower of a bi-level problem whose leader is the enhancer and ϱ; here the
discriminator takes one plain gradient step per iteration (alternating GAN training), while its
weight in the total is a learned hyper-variable like the other terms (``learned:`` in the
composite). The discriminator is in eval mode except during its own step, so its spectral
normalisation's power iteration does not change the objective between the hypergradient's
evaluations. Its weights are saved with the loss module; its optimizer's state is not.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from nas_llv.config import ConfigError
from nas_llv.losses.base import Loss, check_positive, register


def _sn_conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, 3, stride=stride, padding=1))


class UNetDiscriminator(nn.Module):
    """Spectral-normalised U-Net discriminator with a global and a patch (per-pixel) head.

    x: (N, 3, H, W) -> (global logits (N, 1), patch logits (N, 1, H, W)); any H, W >= 1.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = nn.Conv2d(3, w, 3, padding=1)
        self.down = nn.ModuleList([_sn_conv(w, 2 * w, 2), _sn_conv(2 * w, 4 * w, 2)])
        self.glo = spectral_norm(nn.Linear(4 * w, 1))
        self.up = nn.ModuleList([_sn_conv(4 * w, 2 * w), _sn_conv(2 * w, w)])
        self.pat = nn.Conv2d(w, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = [F.leaky_relu(self.stem(x), 0.2)]
        for conv in self.down:
            skips.append(F.leaky_relu(conv(skips[-1]), 0.2))
        y = skips[-1]
        glo = self.glo(y.mean(dim=(2, 3)))
        for conv, skip in zip(self.up, reversed(skips[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = F.leaky_relu(conv(y), 0.2) + skip
        return glo, self.pat(y)


def _bce(logits: tuple[torch.Tensor, torch.Tensor], real: bool) -> torch.Tensor:
    return sum(F.binary_cross_entropy_with_logits(t, torch.full_like(t, float(real))) for t in logits)


@register("adversarial")
class AdversarialLoss(Loss):
    """Generator term of CollaBA Eq. (10); owns the discriminator (module docstring).

    width: the discriminator's first width; lr, betas: its Adam optimizer (CollaBA: Adam, 2e-3 for
    the whole model; 1e-4 here, a common discriminator rate).
    """

    needs = ("x", "high")

    def __init__(self, width: int = 16, lr: float = 1e-4, betas: tuple[float, float] = (0.5, 0.999)) -> None:
        super().__init__()
        check_positive("adversarial", "lr", lr)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"loss 'adversarial': width must be an integer >= 1, got {width!r}")
        self.lr, self.betas = float(lr), tuple(betas)
        self.discriminator = UNetDiscriminator(width).eval()
        self._optimizer: torch.optim.Optimizer | None = None
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def compute(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        self._last = (x.detach(), high.detach())
        return _bce(self.discriminator(x), real=True)

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """BCE(D(real), 1) + BCE(D(fake), 0) over both heads (fake detached by the caller)."""
        return _bce(self.discriminator(real), real=True) + _bce(self.discriminator(fake), real=False)

    def discriminator_step(self) -> torch.Tensor | None:
        """One Adam step of the discriminator on the last (output, ground truth) pair; its loss
        before the step (0-dim, on the device), or None when the term has not been evaluated yet."""
        if self._last is None:
            return None
        if self._optimizer is None:
            self._optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=self.betas)
        self.discriminator.train()
        with torch.enable_grad():
            loss = self.discriminator_loss(*self._last)
            self._optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self._optimizer.step()
        self.discriminator.eval()
        self._last = None
        return loss.detach()

    def train(self, mode: bool = True) -> "AdversarialLoss":
        super().train(mode)
        self.discriminator.eval()  # only discriminator_step runs it in training mode
        return self


def step_discriminators(module: nn.Module) -> dict[str, torch.Tensor]:
    """One discriminator step for every adversarial term under ``module``: {term path: its D loss}."""
    out: dict[str, Any] = {}
    for name, m in module.named_modules():
        if isinstance(m, AdversarialLoss):
            value = m.discriminator_step()
            if value is not None:
                out[name or "adversarial"] = value
    return out
