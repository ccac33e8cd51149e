"""RUAS losses: the unsupervised scene loss on t and the denoising loss on x.

Scene loss (RUAS Sec. 5.1): ``l_s = ||t^K - y||^2 + eta * RTV(t^K)``, with the relative total
variation of Xu et al. 2012, "Structure extraction from texture via relative total variation":

    RTV(I) = mean_p [ D_x(p) / (L_x(p) + eps) + D_y(p) / (L_y(p) + eps) ],
    D_x(p) = sum_q g(p, q) |d_x I(q)|,   L_x(p) = | sum_q g(p, q) d_x I(q) |,

g a normalised Gaussian window of scale ``sigma`` (size odd(round(5 sigma)), as Xu's code),
d_x a forward difference (zero at the last column), the sum over in-image q only. It is
computed per channel and averaged over pixels, channels and images (Xu sums over pixels; the mean
keeps eta independent of the image size, and with the data term also a mean Xu's lambda carries
over: default eta = 0.01, sigma = 3, eps = 1e-3, Xu's defaults).

The public RUAS code (KarelZhang/RUAS, ``LossFunction`` and ``SmoothLoss`` in model.py and
model_search.py) does not compute RTV. It uses ``0.5 * MSE(t, y) + S(y, t)`` with
``S = sum over 24 neighbour offsets o (distance 1 and 2) of mean(w_o) * mean|d_o t|`` where
``w_o = exp(-0.005 * sum_c (d_o y)^2)``: the code's ``-1.0 / 2 * sigma * sigma`` with sigma = 0.1
evaluates to -0.005, not -1/(2 sigma^2), and ``norm()`` reduces |d_o t| to a scalar before the
product, so the edge weight only enters through its image mean. model_search.py (search) uses
y in RGB; model.py (training) passes y through an "rgb2yCbCr" that flattens the NCHW tensor with
``view(-1, 3)`` and so mixes neighbouring pixels instead of channels (batch size 1 only). Both are
reproduced as ``smooth: code`` (search) and ``smooth: code_ycbcr`` (training), with the code's
weights (fidelity 0.5, eta 1) as defaults for those modes.

Denoising loss (public code, ``DenoiseLossFunction``): ``1e-7 * MSE(x, u) + TV2(x)`` with
``TV2(x) = 2 * (mean (d_v x)^2 + mean (d_h x)^2)``; the paper gives no formula.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from nas_llv.losses.base import Loss, check_choice, check_positive, register
from nas_llv.losses.image import total_variation

SmoothMode = Literal["rtv", "code", "code_ycbcr"]
SMOOTH_MODES = ("rtv", "code", "code_ycbcr")
# (fidelity weight, eta) by smoothness mode when not given.
_DEFAULTS = {"rtv": (1.0, 0.01), "code": (0.5, 1.0), "code_ycbcr": (0.5, 1.0)}

# The 12 distinct offsets of the code's 24 terms (each appears in both directions, with equal values).
_CODE_OFFSETS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (2, -1), (1, 2), (1, -2), (2, 2), (2, -2))
_YCBCR = ((0.257, -0.148, 0.439), (0.564, -0.291, -0.368), (0.098, 0.439, -0.071))
_YCBCR_BIAS = (16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0)


def gaussian_window(sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """1-D Gaussian of size odd(round(5 sigma)) (MATLAB ``bitor(round(5*sigma), 1)``), summing to 1."""
    size = max(int(round(5 * sigma)) | 1, 3)
    d = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-d.square() / (2 * sigma**2))
    return g / g.sum()


def _window_sum(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian-weighted sum over in-image neighbours (zero padding), per channel."""
    c, k = x.shape[1], g.numel()
    gx = g.view(1, 1, 1, k).expand(c, 1, 1, k)
    gy = g.view(1, 1, k, 1).expand(c, 1, k, 1)
    x = F.conv2d(x, gx, padding=(0, k // 2), groups=c)
    return F.conv2d(x, gy, padding=(k // 2, 0), groups=c)


def forward_differences(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_x, d_y) of x: (N, C, H, W), same shape, zero on the last column / row."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return dx, dy


def relative_total_variation(x: torch.Tensor, sigma: float = 3.0, eps: float = 1e-3) -> torch.Tensor:
    """RTV of x: (N, C, H, W), averaged over all pixels, channels and images; scalar >= 0."""
    g = gaussian_window(sigma, x.device, x.dtype)
    total = x.new_zeros(())
    for d in forward_differences(x):
        windowed_abs = _window_sum(d.abs(), g)
        abs_windowed = _window_sum(d, g).abs()
        total = total + (windowed_abs / (abs_windowed + eps)).mean()
    return total


def _shifted_pair(x: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x at p and at p + (dy, dx), over the pixels where both lie in the image (dy >= 0)."""
    h, w = x.shape[-2:]
    xs = slice(max(0, -dx), w - max(0, dx))
    xt = slice(max(0, dx), w - max(0, -dx))
    return x[..., : h - dy, xs], x[..., dy:, xt]


def _code_ycbcr(y: torch.Tensor) -> torch.Tensor:
    """The training code's rgb2yCbCr, flattening each NCHW image with view(-1, 3) as it does."""
    mat = torch.tensor(_YCBCR, dtype=y.dtype, device=y.device)
    bias = torch.tensor(_YCBCR_BIAS, dtype=y.dtype, device=y.device)
    return torch.stack([(img.reshape(-1, 3) @ mat + bias).reshape(img.shape) for img in y])


def ruas_code_smoothness(y: torch.Tensor, t: torch.Tensor, sigma: float = 0.1,
                         guide: Literal["rgb", "ycbcr"] = "rgb") -> torch.Tensor:
    """The public RUAS ``SmoothLoss(y, t)`` exactly (see the module docstring); scalar."""
    if guide == "ycbcr":
        y = _code_ycbcr(y)
    coef = -1.0 / 2 * sigma * sigma  # the code's expression, kept as written
    total = t.new_zeros(())
    for dy, dx in _CODE_OFFSETS:
        ya, yb = _shifted_pair(y, dy, dx)
        ta, tb = _shifted_pair(t, dy, dx)
        w = torch.exp((ya - yb).square().sum(dim=1, keepdim=True) * coef)
        total = total + 2 * w.mean() * (ta - tb).abs().mean()
    return total


@register("ruas_scene")
class RUASSceneLoss(Loss):
    """``fidelity * mean (t - y)^2 + eta * smooth(t)``; t, y: (N, 3, H, W) in (0, 1].

    ``smooth``: ``rtv`` (paper, default), ``code`` / ``code_ycbcr`` (the public search / training
    code). ``fidelity`` and ``eta`` default to 1 and 0.01 for rtv, 0.5 and 1 for the code modes.
    ``sigma`` and ``eps`` are RTV's window scale and stabiliser; ``code_sigma`` the code's 0.1.
    """

    needs = ("t", "y")

    def __init__(self, eta: float | None = None, sigma: float = 3.0, eps: float = 1e-3,
                 smooth: SmoothMode = "rtv", fidelity: float | None = None, code_sigma: float = 0.1) -> None:
        super().__init__()
        check_choice(self.loss_name, "smooth", smooth, SMOOTH_MODES)
        default_fid, default_eta = _DEFAULTS[smooth]
        self.smooth = smooth
        self.fidelity = default_fid if fidelity is None else fidelity
        self.eta = default_eta if eta is None else eta
        for option, value in (("fidelity", self.fidelity), ("eta", self.eta)):
            check_positive(self.loss_name, option, value, allow_zero=True)
        for option, value in (("sigma", sigma), ("eps", eps), ("code_sigma", code_sigma)):
            check_positive(self.loss_name, option, value)
        self.sigma, self.eps, self.code_sigma = float(sigma), float(eps), float(code_sigma)

    def smoothness(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.smooth == "rtv":
            return relative_total_variation(t, self.sigma, self.eps)
        guide = "rgb" if self.smooth == "code" else "ycbcr"
        return ruas_code_smoothness(y, t, self.code_sigma, guide)

    def compute(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        data = (t - y).square().mean()
        return self.fidelity * data + self.eta * self.smoothness(t, y)

    def extra_repr(self) -> str:
        return f"smooth={self.smooth}, fidelity={self.fidelity}, eta={self.eta}, sigma={self.sigma}, eps={self.eps}"


def squared_tv(x: torch.Tensor) -> torch.Tensor:
    """The RUAS code's TVLoss: ``2 * (mean (d_v x)^2 + mean (d_h x)^2)`` over valid differences."""
    return 2 * total_variation(x, 2)


@register("ruas_denoise")
class RUASDenoiseLoss(Loss):
    """``fidelity * mean (x - u)^2 + tv_weight * TV2(x)``; x (denoised), u (enhanced): (N, 3, H, W).

    Defaults are the public code's: fidelity 1e-7, tv_weight 1 (so it is almost pure smoothing;
    the denoiser's residual form x = u - n keeps x close to u).
    """

    needs = ("x", "u")

    def __init__(self, fidelity: float = 1e-7, tv_weight: float = 1.0) -> None:
        super().__init__()
        check_positive(self.loss_name, "fidelity", fidelity, allow_zero=True)
        check_positive(self.loss_name, "tv_weight", tv_weight, allow_zero=True)
        self.fidelity, self.tv_weight = float(fidelity), float(tv_weight)

    def compute(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.fidelity * (x - u).square().mean() + self.tv_weight * squared_tv(x)

    def extra_repr(self) -> str:
        return f"fidelity={self.fidelity}, tv_weight={self.tv_weight}"


__all__ = ["RUASDenoiseLoss", "RUASSceneLoss", "gaussian_window", "relative_total_variation",
           "ruas_code_smoothness", "squared_tv", "forward_differences"]
