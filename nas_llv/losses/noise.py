"""The objective of RUAS_A's noise estimator Ψ_e (``noise_level``).

The TPAMI paper (Sec. 4.1) defines Ψ_e only as a five-layer CNN giving "the estimated noise map"
θ = Ψ_e(u^K), trained on u^K, and skips the denoiser when ||θ||_1 <= ε; it states no loss. The
public code gates on ``Σ|θ| / (C·H·W) >= 0.035``, the mean absolute value of the map. We read θ as
a map of the *local noise magnitude* and train it on noisy/clean pairs (``noisy_demo``): with the
noise actually added ``n = low - high``, the default ``mode: map`` minimises ``mean (|θ| - |n|)^2``
per pixel. Its minimiser is ``|θ(p)| = E[|n(p)| | image]``, the expected absolute noise at p
(``sqrt(2/π)·σ ≈ 0.8σ`` for Gaussian noise of std σ), so the gate's level ``mean|θ|`` estimates the
image's mean absolute noise and the threshold 0.035 opens for Gaussian σ above about 0.044. The
target is unpredictable per pixel, but its conditional mean is the noise level, which is what a
squared error recovers (an L1 error would recover the median, 0.67σ, and shift the threshold).
``mode: level`` regresses the per-image level instead, ``(mean|θ| - mean|n|)^2``: the gate's
quantity directly, with less supervision per image.
"""
from __future__ import annotations

import torch

from nas_llv.losses.base import Loss, check_choice, check_same_shape, register

NOISE_LOSS_MODES = ("map", "level")


@register("noise_level")
class NoiseLevelLoss(Loss):
    """Noise-estimator regression (module docstring). ``key`` (default ``noise_map``, θ: (N, C, H, W),
    any sign: its absolute value is compared), ``low`` the noisy image and ``high`` the clean one,
    (N, C, H, W) in [0, 1]; needs paired noisy/clean data at the same exposure."""

    def __init__(self, key: str = "noise_map", mode: str = "map") -> None:
        super().__init__()
        check_choice("noise_level", "mode", mode, NOISE_LOSS_MODES)
        self.mode = mode
        self.needs = (key, "y", "high")

    def compute(self, theta: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        check_same_shape(self.loss_name, low, high, "the noisy input 'low' and the clean 'high'")
        check_same_shape(self.loss_name, theta, low, f"the noise map '{self.needs[0]}' and the input 'low'")
        est, noise = theta.abs(), (low - high).abs()
        if self.mode == "level":
            return (est.flatten(1).mean(1) - noise.flatten(1).mean(1)).square().mean()
        return (est - noise).square().mean()
