"""Synthesised noisy/clean pairs for training RUAS_A's noise estimator (``noisy_demo``).

The estimator Ψ_e of RUAS_A looks at u^K, the scene module's *enhanced* (normal-light) image, and
decides whether the denoiser runs. Its training pairs are therefore normal-light images: ``high``
is a clean demo photograph (``nas_llv.data.demo``, random square crop resized to ``size``),
``low`` the same image with noise of a known, random level added. The noise actually added is
``low - high`` (after clipping), which is what the ``noise_level`` loss regresses.

Noise model per item (all draws from one ``torch.Generator`` seeded by ``seed``):
``low = clip(high + sqrt(sigma^2 + a * high) * n, 0, 1)``, ``n ~ N(0, 1)`` per pixel and channel,
with Gaussian std ``sigma ~ U[sigma_min, sigma_max]`` and Poisson-like (shot) gain
``a ~ U[0, shot_max]`` (the heteroscedastic Gaussian approximation of Poisson-Gaussian noise,
Foi et al. 2008). A share ``clean_ratio`` of the items get no noise at all (``low == high``), so
the estimator also sees what a clean image looks like.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from nas_llv.config import ConfigError, check_range
from nas_llv.data.demo import SOURCE_NAMES, TensorPairs, _crop_resize, _uniform, source_image
from nas_llv.registry import DATASETS

log = logging.getLogger(__name__)


def add_noise(clean: torch.Tensor, sigma: float, shot: float = 0.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(clean + sqrt(sigma^2 + shot * clean) * N(0, 1), 0, 1)``; clean: (..., 3, H, W) in [0, 1]."""
    std = (sigma**2 + shot * clean).sqrt()
    noise = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    return (clean + std * noise).clamp(0.0, 1.0)


def noisy_pairs(count: int = 64, size: int = 64, sigma_min: float = 0.0, sigma_max: float = 0.15,
                shot_max: float = 0.0, clean_ratio: float = 0.125, seed: int = 0) -> TensorPairs:
    """``count`` pairs ``(3, size, size)``: ``low`` noisy, ``high`` clean; deterministic in ``seed``.

    Item ``i`` crops source photograph ``i % 8`` (``SOURCE_NAMES`` order); ``params[i]`` records
    its ``sigma`` and ``shot`` (0 for a clean item).
    """
    if count < 1 or size < 8:
        raise ConfigError(f"noisy_demo: need count >= 1 and size >= 8, got count={count}, size={size}")
    if not 0 <= sigma_min <= sigma_max or shot_max < 0 or not 0 <= clean_ratio <= 1:
        raise ConfigError(f"noisy_demo: need 0 <= sigma_min <= sigma_max, shot_max >= 0 and 0 <= clean_ratio <= 1; "
                          f"got {sigma_min}, {sigma_max}, {shot_max}, {clean_ratio}")
    g = torch.Generator().manual_seed(seed)
    lows, highs, names, params = [], [], [], []
    for i in range(count):
        name = SOURCE_NAMES[i % len(SOURCE_NAMES)]
        high = _crop_resize(source_image(name), size, g)
        clean = _uniform(g, 0.0, 1.0) < clean_ratio
        p = {"sigma": 0.0, "shot": 0.0} if clean else {"sigma": _uniform(g, sigma_min, sigma_max),
                                                       "shot": _uniform(g, 0.0, shot_max)}
        lows.append(add_noise(high, generator=g, **p) if not clean else high.clone())
        highs.append(high)
        names.append(f"{name}_{i:03d}")
        params.append(p)
    log.debug("noisy_demo: %d pairs of %dx%d, sigma in [%g, %g], seed %d", count, size, size,
              sigma_min, sigma_max, seed)
    return TensorPairs(lows, highs, names, 1, params)


@dataclass(frozen=True)
class NoisyDemoOptions:
    """``noisy_demo``: ``noisy_count`` pairs of ``noisy_size`` pixels; Gaussian std in
    [``sigma_min``, ``sigma_max``], shot gain in [0, ``shot_max``], a ``clean_ratio`` share noiseless."""

    noisy_count: int = 64
    noisy_size: int = 64
    sigma_min: float = 0.0
    sigma_max: float = 0.15
    shot_max: float = 0.0
    clean_ratio: float = 0.125

    def validate(self) -> None:
        check_range("noisy_count", self.noisy_count, 2)
        check_range("noisy_size", self.noisy_size, 8)
        check_range("sigma_min", self.sigma_min, 0.0)
        check_range("sigma_max", self.sigma_max, self.sigma_min, 1.0)
        check_range("shot_max", self.shot_max, 0.0, 1.0)
        check_range("clean_ratio", self.clean_ratio, 0.0, 1.0)


@DATASETS.register("noisy_demo", config=NoisyDemoOptions)
def build_noisy_demo(noisy_count: int = 64, noisy_size: int = 64, sigma_min: float = 0.0, sigma_max: float = 0.15,
                     shot_max: float = 0.0, clean_ratio: float = 0.125, seed: int = 0) -> TensorPairs:
    """Normal-light demo photographs with synthesised noise of known level (for RUAS_A's estimator)."""
    return noisy_pairs(noisy_count, noisy_size, sigma_min, sigma_max, shot_max, clean_ratio, seed)
