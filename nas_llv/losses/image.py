"""Pixel losses (l1, mse, ssim, tv), TriCo's self-regularised luminance and CollaBA's
illumination-prior loss.

Readings chosen where the papers leave room:
- ``luminance`` (TriCo Eq. 8, ``e^{|v̄_c - mu_c - sigma_c|} - 1`` with ImageNet mu, sigma): v is
  TriCo's reflectance v = x_ll / u (Eq. 1; the text says element-wise division), the brightened
  image that feeds the SR net, i.e. our ``"u"``. The paper calls v̄_c "the mean across channels"
  yet indexes it by c; the default ``mean_over: space`` reads v̄_c as the spatial mean of channel c
  (a per-image colour/brightness target mu_c + sigma_c = [0.714, 0.680, 0.631]); ``channels`` is
  the literal reading, the per-pixel channel mean compared with each target. Either way the
  exponential is averaged over channels (and pixels) and images.
- ``tv`` (TriCo Eq. 11, anisotropic L1) and the pixel losses average over elements instead of
  summing, so weights do not depend on the image size.
- ``illum_prior`` (CollaBA Eq. 4, 7): the target is x_III = |max_c(x) - max_c(y)| / max_c(y), x the
  low-light input, y the normal-light ground truth, both taken at the resolution of the predicted
  map (area resize when the ground truth is larger, as in super-resolution). Eq. 7 writes the L2
  norm; the default ``norm: mse`` is its size-independent squared mean, ``l2`` the per-image norm.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from nas_llv.losses.base import Loss, check_choice, check_positive, check_same_shape, register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PairedLoss(Loss):
    """A loss between ``key`` (default the final output x) and the ground truth."""

    def __init__(self, key: str = "x") -> None:
        super().__init__()
        self.needs = (key, "high")

    def compute(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        check_same_shape(self.loss_name, x, high, f"'{self.needs[0]}' and the ground truth 'high'")
        return self.pair(x, high)

    def pair(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register("l1")
class L1Loss(PairedLoss):
    """Mean |x - high| (TriCo Eq. 9, CollaBA Eq. 8). x, high: (N, C, H, W)."""

    def pair(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return (x - high).abs().mean()


@register("mse")
class MSELoss(PairedLoss):
    """Mean (x - high)^2. x, high: (N, C, H, W)."""

    def pair(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return (x - high).square().mean()


@register("ssim")
class SSIMLoss(PairedLoss):
    """1 - mean SSIM(x, high) (skimage-matching SSIM of ``nas_llv.metrics``); x, high in [0, 1],
    H, W >= ``win_size`` (7)."""

    def __init__(self, key: str = "x", win_size: int = 7) -> None:
        super().__init__(key)
        self.win_size = win_size

    def pair(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        from nas_llv.metrics import ssim  # deferred: the metrics package pulls in lpips helpers

        return 1 - ssim(x, high, data_range=1.0, win_size=self.win_size).mean()


def total_variation(x: torch.Tensor, p: int = 1) -> torch.Tensor:
    """mean |d_h x|^p + mean |d_v x|^p over the valid differences of x: (N, C, H, W); scalar."""
    dh = x[..., :, 1:] - x[..., :, :-1]
    dv = x[..., 1:, :] - x[..., :-1, :]
    return dh.abs().pow(p).mean() + dv.abs().pow(p).mean()


@register("tv")
class TVLoss(Loss):
    """Total variation of ``key`` (default x), TriCo Eq. 11 as a mean; ``p`` 1 (L1) or 2."""

    def __init__(self, key: str = "x", p: int = 1) -> None:
        super().__init__()
        check_choice(self.loss_name, "p", p, (1, 2))
        self.needs, self.p = (key,), p

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return total_variation(x, self.p)


@register("luminance")
class LuminanceLoss(Loss):
    """TriCo's self-regularised luminance loss on ``key`` (default u, TriCo's v); scalar >= 0.

    v: (N, 3, H, W). ``mean_over``: ``space`` (default) or ``channels``, see the module docstring.
    """

    def __init__(self, key: str = "u", mean_over: Literal["space", "channels"] = "space") -> None:
        super().__init__()
        check_choice(self.loss_name, "mean_over", mean_over, ("space", "channels"))
        self.needs, self.mean_over = (key,), mean_over

    def compute(self, v: torch.Tensor) -> torch.Tensor:
        if v.shape[1] != 3:
            raise ValueError(f"loss 'luminance' expects RGB images (N, 3, H, W), got {tuple(v.shape)}")
        target = torch.tensor(IMAGENET_MEAN, dtype=v.dtype, device=v.device) + torch.tensor(
            IMAGENET_STD, dtype=v.dtype, device=v.device)
        if self.mean_over == "space":
            vbar = v.mean(dim=(2, 3))  # (N, 3)
            gap = vbar - target
        else:
            vbar = v.mean(dim=1, keepdim=True)  # (N, 1, H, W)
            gap = vbar - target.view(1, 3, 1, 1)
        return torch.expm1(gap.abs()).mean()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def illumination_prior(low: torch.Tensor, high: torch.Tensor, size: tuple[int, int] | None = None,
                       eps: float = 1e-3) -> torch.Tensor:
    """CollaBA Eq. 4: |max_c(low) - max_c(high)| / max(max_c(high), eps), at ``size``.

    low, high: (N, 3, h, w) and (N, 3, H, W) in [0, 1]; ``size`` defaults to low's. Returns
    (N, 1, *size), 0 where the input is already as bright as the target, near 1 where it is dark.
    """
    size = tuple(low.shape[-2:]) if size is None else tuple(size)
    gl = _resize(low, size).amax(dim=1, keepdim=True)
    gh = _resize(high, size).amax(dim=1, keepdim=True)
    return (gl - gh).abs() / gh.clamp_min(eps)


@register("illum_prior")
class IllumPriorLoss(Loss):
    """CollaBA Eq. 7: distance between the predicted illumination map and the prior of Eq. 4.

    illum: (N, 1 or C, h, w); y (low input) and high (ground truth) RGB at any resolution.
    ``norm``: ``mse`` (default) or ``l2`` (per-image Frobenius norm, averaged over the batch).
    """

    needs = ("illum", "y", "high")

    def __init__(self, norm: Literal["mse", "l2"] = "mse", eps: float = 1e-3) -> None:
        super().__init__()
        check_choice(self.loss_name, "norm", norm, ("mse", "l2"))
        check_positive(self.loss_name, "eps", eps)
        self.norm, self.eps = norm, float(eps)

    def compute(self, illum: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # the prior is a target, not a path for gradients
            prior = illumination_prior(low, high, tuple(illum.shape[-2:]), self.eps)
        diff = illum - prior
        if self.norm == "mse":
            return diff.square().mean()
        return diff.flatten(1).norm(dim=1).mean()

    def extra_repr(self) -> str:
        return f"norm={self.norm}, eps={self.eps}"
