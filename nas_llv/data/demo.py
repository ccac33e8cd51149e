"""An embedded low-light demo set, built in memory from scikit-image's bundled colour photographs
(no download): normal-light originals as ``high``, synthetically darkened copies as ``low``.

Darkening model (per image, all draws from one ``torch.Generator`` seeded by ``seed``):

1. linearise: ``L = srgb_to_linear(x)`` (IEC 61966-2-1 inverse transfer function);
2. under-expose: ``L' = k * L`` with ``k ~ U[0.05, 0.2]``;
3. sensor noise, the heteroscedastic Gaussian approximation of Poisson-Gaussian noise
   (Foi et al. 2008): ``L'' = L' + sqrt(a * L' + b^2) * n``, ``n ~ N(0, 1)``, with shot-noise
   gain ``a ~ logU[1e-3, 1e-2]`` and read-noise std ``b ~ logU[1e-3, 5e-3]``;
4. clip to [0, 1] and re-apply the sRGB transfer function.

For low-light super-resolution (``demo_sr_pairs``) the ground truth is the HR crop; the input is
its area-average (box filter) downsampling by ``scale`` computed in linear light -- what a sensor
with ``scale``-times larger pixels integrates -- followed by steps 2-4 at the low resolution, so
the noise is that of the low-resolution sensor rather than noise averaged away by downsampling.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nas_llv.config import ConfigError

log = logging.getLogger(__name__)


def _sources() -> dict[str, Callable[[], np.ndarray]]:
    from skimage import data  # these eight ship inside the wheel: no download is ever triggered

    return {"astronaut": data.astronaut, "chelsea": data.chelsea, "coffee": data.coffee,
            "rocket": data.rocket, "motorcycle": lambda: data.stereo_motorcycle()[0],
            "ihc": data.immunohistochemistry, "hubble": data.hubble_deep_field, "retina": data.retina}


SOURCE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "ihc", "hubble", "retina")
EXPOSURE = (0.05, 0.2)
SHOT = (1e-3, 1e-2)
READ = (1e-3, 5e-3)


@functools.lru_cache(maxsize=None)
def source_image(name: str) -> torch.Tensor:
    """A bundled photograph as ``(3, H, W)`` uint8 (cached in memory)."""
    arr = _sources()[name]()
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).contiguous()


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded ``x`` in [0, 1] -> linear light in [0, 1] (exact piecewise curve)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(0) ** 2.4)


def linear_to_srgb(y: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded in [0, 1] (inverse of ``srgb_to_linear``)."""
    return torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def darken_linear(lin: torch.Tensor, exposure: float, shot: float, read: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Linear ``lin`` -> ``clip(k*lin + sqrt(a*k*lin + b^2) * N(0, 1), 0, 1)`` (steps 2-4 before gamma)."""
    signal = lin * exposure
    std = (shot * signal + read**2).sqrt()
    noise = torch.randn(lin.shape, generator=generator, dtype=lin.dtype, device=lin.device)
    return (signal + std * noise).clamp(0.0, 1.0)


def darken(x: torch.Tensor, exposure: float, shot: float = 0.0, read: float = 0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """sRGB ``x: (..., 3, H, W)`` in [0, 1] -> a low-light sRGB copy in [0, 1] (module docstring)."""
    return linear_to_srgb(darken_linear(srgb_to_linear(x), exposure, shot, read, generator))


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _log_uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_uniform(g, math.log(lo), math.log(hi)))


def sample_darkening(g: torch.Generator) -> dict[str, float]:
    """Draw ``{"exposure", "shot", "read"}`` from the documented ranges."""
    return {"exposure": _uniform(g, *EXPOSURE), "shot": _log_uniform(g, *SHOT),
            "read": _log_uniform(g, *READ)}


def _crop_resize(img: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """A random square crop (half to all of the short side) of uint8 ``img``, resized to ``size``."""
    h, w = img.shape[1:]
    side = max(1, int(min(h, w) * _uniform(g, 0.5, 1.0)))
    top = int(torch.randint(0, h - side + 1, (), generator=g))
    left = int(torch.randint(0, w - side + 1, (), generator=g))
    crop = img[:, top:top + side, left:left + side].float().div(255.0)[None]
    out = F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[0].clamp(0.0, 1.0)


class TensorPairs(Dataset):
    """In-memory pairs; item ``{"low": (3, h, w), "high": (3, scale*h, scale*w), "name"}``."""

    def __init__(self, lows: list[torch.Tensor], highs: list[torch.Tensor], names: list[str],
                 scale: int = 1, params: list[dict[str, float]] | None = None) -> None:
        self.lows, self.highs, self.names, self.scale = lows, highs, names, scale
        self.params = params or []  # the darkening drawn for each item, for inspection

    def __len__(self) -> int:
        return len(self.lows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"low": self.lows[i], "high": self.highs[i], "name": self.names[i]}


def _check(count: int, size: int, scale: int) -> None:
    if count < 1:
        raise ConfigError(f"demo count={count} must be >= 1")
    if scale not in (1, 2, 4):
        raise ConfigError(f"demo scale={scale} is not allowed; allowed: 1, 2, 4")
    if size < 8 * scale or size % scale:
        raise ConfigError(f"demo size={size} must be a multiple of scale={scale} and >= {8 * scale}")


def demo_sr_pairs(scale: int = 2, count: int = 8, size: int = 128, seed: int = 0) -> TensorPairs:
    """``count`` low-light SR pairs: ``high (3, size, size)`` originals, ``low (3, size/scale, size/scale)``.

    Source photograph ``i % 8`` in ``SOURCE_NAMES`` order with a random crop; deterministic in ``seed``.
    """
    _check(count, size, scale)
    g = torch.Generator().manual_seed(seed)
    lows, highs, names, params = [], [], [], []
    for i in range(count):
        name = SOURCE_NAMES[i % len(SOURCE_NAMES)]
        high = _crop_resize(source_image(name), size, g)
        lin = srgb_to_linear(high)
        if scale > 1:
            lin = F.avg_pool2d(lin[None], scale)[0]
        p = sample_darkening(g)
        lows.append(linear_to_srgb(darken_linear(lin, generator=g, **p)))
        highs.append(high)
        names.append(f"{name}_{i:03d}")
        params.append(p)
    log.debug("demo: %d pairs of %dx%d (x%d), seed %d", count, size, size, scale, seed)
    return TensorPairs(lows, highs, names, scale, params)


def demo_pairs(count: int = 8, size: int = 128, seed: int = 0) -> TensorPairs:
    """``count`` low-light enhancement pairs ``(3, size, size)``: darkened ``low``, original ``high``."""
    return demo_sr_pairs(scale=1, count=count, size=size, seed=seed)
