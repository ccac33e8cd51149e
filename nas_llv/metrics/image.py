"""Full-reference image metrics in pure torch, matching scikit-image's defaults.

All functions take ``(N, C, H, W)`` floating tensors on any device and return one value per image,
shape ``(N,)``, in the input's dtype. They compute in float64 when the input is float64 and in
float32 otherwise, as ``skimage.metrics`` does for float64 / float32 arrays.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

QuantizeMode = Literal["round", "truncate"]
GreyMode = Literal["mean", "bt601"]
SSIM_WIN_SIZE = 7  # scikit-image's default window: images must be at least this high and wide

# ITU-R BT.601 luma, as cv2.cvtColor(RGB2GRAY) uses in the LLFlow / Retinexformer GT-mean scripts.
_BT601 = (0.299, 0.587, 0.114)

METRICS = ("psnr", "ssim", "lpips", "rmse")  # what `eval` reports per image, in this order


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape != y.shape:
        raise ValueError(
            f"{name}: expected two (N, C, H, W) tensors of the same shape, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not (x.is_floating_point() and y.is_floating_point()):
        raise ValueError(f"{name}: expected floating-point tensors, got {x.dtype} and {y.dtype}")


def _work_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def quantize(x: torch.Tensor, mode: QuantizeMode = "round") -> torch.Tensor:
    """The image as it reads back after saving as 8-bit.

    x: (N, C, H, W) in [0, 1] (values outside are clipped). ``"round"``: ``round(255 x)`` with
    round-half-to-even (``np.round``, then PIL). ``"truncate"``: ``uint8(clip(255 x, 0, 255))``,
    as the RUAS authors save outputs. Returns the same shape and dtype, in [0, 1] on the 1/255 grid.
    """
    if not x.is_floating_point():
        raise ValueError(f"quantize: expected a floating-point tensor, got {x.dtype}")
    scaled = x * 255
    if mode == "round":
        levels = scaled.round().clamp(0, 255)
    elif mode == "truncate":
        levels = scaled.clamp(0, 255).floor()  # uint8 cast truncates toward 0; values are >= 0 here
    else:
        raise ValueError(f"quantize: mode {mode!r} is not allowed; allowed: 'round', 'truncate'")
    return levels / 255


def _mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dt = _work_dtype(x)
    return (x.to(dt) - y.to(dt)).square().mean(dim=(1, 2, 3))


def rmse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error per image. x, y: (N, C, H, W). Returns (N,)."""
    _check_pair(x, y, "rmse")
    return _mse(x, y).sqrt().to(x.dtype)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image, ``10 log10(data_range^2 / MSE)`` (inf for identical images).

    x, y: (N, C, H, W) in [0, data_range]. Returns (N,), as
    ``skimage.metrics.peak_signal_noise_ratio(a, b, data_range=data_range)`` per image.
    """
    _check_pair(x, y, "psnr")
    return (10 * torch.log10(data_range**2 / _mse(x, y))).to(x.dtype)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = SSIM_WIN_SIZE,
    k1: float = 0.01,
    k2: float = 0.03,
) -> torch.Tensor:
    """Mean SSIM per image, differentiable.

    x, y: (N, C, H, W) in [0, data_range], H and W >= win_size. Reproduces
    ``skimage.metrics.structural_similarity(a, b, data_range=data_range, channel_axis=-1)``:
    uniform ``win_size`` window, sample covariance (NP / (NP - 1)), the SSIM map averaged over the
    region not touched by the border ((win_size - 1) // 2 pixels cropped on each side), then over
    channels. Returns (N,).
    """
    _check_pair(x, y, "ssim")
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"ssim: win_size must be an odd integer >= 3, got {win_size}")
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"ssim: images of size {tuple(x.shape[-2:])} are smaller than win_size={win_size}")
    dt = _work_dtype(x)
    a, b = x.to(dt), y.to(dt)
    c = a.shape[1]
    # A stride-1 pool without padding is exactly skimage's uniform filter followed by the crop.
    means = F.avg_pool2d(torch.cat([a, b, a * a, b * b, a * b], dim=1), win_size, stride=1)
    ua, ub, uaa, ubb, uab = means.split(c, dim=1)
    cov_norm = win_size**2 / (win_size**2 - 1)
    va = cov_norm * (uaa - ua * ua)
    vb = cov_norm * (ubb - ub * ub)
    vab = cov_norm * (uab - ua * ub)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    num = (2 * ua * ub + c1) * (2 * vab + c2)
    den = (ua * ua + ub * ub + c1) * (va + vb + c2)
    return (num / den).mean(dim=(1, 2, 3)).to(x.dtype)


def _grey_mean(x: torch.Tensor, grey: GreyMode) -> torch.Tensor:
    if grey == "mean":
        return x.mean(dim=(1, 2, 3))
    if grey == "bt601":
        if x.shape[1] != 3:
            raise ValueError(f"gt_mean_correct: grey='bt601' needs 3 RGB channels, got {x.shape[1]}")
        w = torch.tensor(_BT601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1).mean(dim=(1, 2))
    raise ValueError(f"gt_mean_correct: grey {grey!r} is not allowed; allowed: 'mean', 'bt601'")


def gt_mean_correct(x: torch.Tensor, y: torch.Tensor, grey: GreyMode = "mean") -> torch.Tensor:
    """"GT-mean" correction: rescale each output so its mean grey level equals the ground truth's.

    Several LLIE papers (LLFlow, Retinexformer and later) also report PSNR/SSIM after this step,
    to factor out the global brightness, which the ground truth alone fixes and the input cannot:
    ``x * mean(y) / mean(x)`` per image, clipped to [0, 1]. ``grey="mean"`` averages all channels
    and pixels; ``"bt601"`` averages the BT.601 luma, as those scripts do with ``cv2.cvtColor``.
    An all-black output is returned unchanged. x, y: (N, C, H, W) in [0, 1]. Returns x's shape.
    """
    _check_pair(x, y, "gt_mean_correct")
    mx, my = _grey_mean(x, grey), _grey_mean(y, grey)
    ratio = torch.where(mx > 0, my / mx.clamp_min(torch.finfo(x.dtype).tiny), torch.ones_like(mx))
    return (x * ratio.view(-1, 1, 1, 1)).clamp(0, 1)
