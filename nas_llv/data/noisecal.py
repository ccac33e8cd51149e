"""Noise calibration: fit the synthesis's noise keys (``photons_min/max``, ``read_min/max``,
``row_ratio``; nas_llv/data/synth.py) to real photographs (docs/data.md, "Calibrating the noise to
your camera").

The noise level function (NLF; Foi et al. 2008, "Practical Poissonian-Gaussian noise modeling and
fitting for single-image raw-data") is the noise variance against intensity, measured in flat
patches. The synthesis adds its noise to linear light ``L`` and then encodes,
``y = s(L^(1/gamma))``, rounded to 8 bits, so each patch is carried back through that same curve:
``L = to_linear(mean y)`` and, by the delta method, ``var_L = (var_y - q) / y'(L)^2`` with
``q = (1/255)^2 / 12`` the rounding's variance. There the synthesis's noise is
``var_L = a L + b`` with ``a = 1 / photons`` and ``b = read^2``, plus a row offset of variance
``row^2`` shared by a row's pixels: fitting ``a, b`` per image and reading ``row`` off the row
means gives keys under which the synthesis reproduces the measured NLF.

Per ``P x P`` tile of one channel (``P`` = ``patch``):

- ``hp``: the variance a high-pass filter (``[1,-2,1] x [1,-2,1] / 6``, gain 1 on white noise)
  sees. It ignores planes, and rows and columns offsets, so texture and banding leave it nearly
  alone: the NLF is fitted on it. For white noise, the synthesis's, it is the pixel variance.
- ``var``: the pixel variance about a fitted plane. Noise that demosaicking, denoising, resizing
  or compression made spatially correlated has more of it than ``hp`` shows. The ratio of their
  medians, the image's ``correlation`` (1 for white noise; residual texture raises it too),
  scales ``a`` and ``b`` under ``reading="pixel"``, so that the synthesis's white noise has the
  photograph's pixel variance; ``reading="highpass"`` matches the fine grain alone.
- row noise: the variance of the row means' second differences less that of the column means':
  both carry the pixel noise averaged over ``P`` pixels, white or correlated alike; only rows
  carry banding.
- flat: a tile is kept where at most ``CLIPPED`` of its pixels are black or white (clipping
  shrinks variance) and ``var / hp`` (texture raises it) is within ``FLAT_SLACK`` of the image's
  own ``FLAT_QUANTILE`` of it.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nas_llv.config import ConfigError
from nas_llv.data.io import list_images, read_image
from nas_llv.data.synth import from_linear, to_linear

log = logging.getLogger(__name__)

READINGS = ("pixel", "highpass")
LEVEL = 1.0 / 255.0
ROUNDING_VAR = LEVEL**2 / 12.0  # variance of rounding to 8 bits
CLIPPED = 0.01  # a tile with more of its pixels at black or white is left out
FLAT_QUANTILE, FLAT_SLACK = 0.25, 1.5  # flat: texture score <= FLAT_SLACK x its FLAT_QUANTILE
OUTLIER = 2.0  # a flat tile whose variance is over OUTLIER x the fitted NLF holds texture
MIN_TILES = 30  # flat tiles an image needs to be fitted
BOOTSTRAPS = 100
PHOTONS_CAP, READ_FLOOR = 1e7, 1e-6  # "no shot noise" / "no read noise" in recipe-key terms


# -- per-tile statistics ------------------------------------------------------------------------
def _blocks(y: np.ndarray, patch: int) -> np.ndarray:
    """``y: (H, W)`` -> ``(N, patch, patch)``, the image's non-overlapping tiles."""
    h, w = y.shape[0] // patch, y.shape[1] // patch
    return y[:h * patch, :w * patch].reshape(h, patch, w, patch).swapaxes(1, 2).reshape(-1, patch, patch)


def _d2(x: np.ndarray, axis: int) -> np.ndarray:
    """Second differences ``x[i-1] - 2 x[i] + x[i+1]`` along ``axis`` (variance gain 6 on white noise)."""
    n = x.shape[axis]
    take = lambda lo, hi: np.take(x, np.arange(lo, n - hi), axis=axis)  # noqa: E731
    return take(0, 2) - 2 * take(1, 1) + take(2, 0)


def _plane_var(b: np.ndarray) -> np.ndarray:
    """``b: (N, P, P)`` -> ``(N,)`` variance about each tile's least-squares plane."""
    i = np.arange(b.shape[1]) - (b.shape[1] - 1) / 2
    slope_r, slope_c = b.mean(2) @ i / (i @ i), b.mean(1) @ i / (i @ i)
    plane = b.mean((1, 2))[:, None, None] + slope_r[:, None, None] * i[:, None] + slope_c[:, None, None] * i
    return ((b - plane) ** 2).sum((1, 2)) / (b[0].size - 3)


@dataclass(frozen=True)
class PatchStats:
    """Statistics of one channel's tiles in its own (encoded) values, each ``(N,)``: ``mean`` in
    [0, 1]; ``var`` about a plane; ``hp`` high-passed; ``rows`` and ``cols`` the row and column
    means' (second differences' variance / 6); ``clipped`` the share of pixels at black or white."""

    mean: np.ndarray
    var: np.ndarray
    hp: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    clipped: np.ndarray


def patch_stats(y: np.ndarray, patch: int = 16) -> PatchStats:
    """``y: (H, W)`` float in [0, 1] -> the statistics of its ``patch x patch`` tiles."""
    b = _blocks(np.asarray(y, dtype=np.float64), patch)
    return PatchStats(mean=b.mean((1, 2)), var=_plane_var(b), hp=(_d2(_d2(b, 2), 1) ** 2).mean((1, 2)) / 36.0,
                      rows=(_d2(b.mean(2), 1) ** 2).mean(1) / 6.0, cols=(_d2(b.mean(1), 1) ** 2).mean(1) / 6.0,
                      clipped=((b < LEVEL / 2) | (b > 1 - LEVEL / 2)).mean((1, 2)))


def flat(s: PatchStats) -> np.ndarray:
    """``(N,)`` bool: tiles flat enough to measure noise on, away from black and white."""
    inside = (s.clipped <= CLIPPED) & (s.hp > 0)
    if inside.sum() < 2:
        return inside
    score = s.var / np.where(inside, s.hp, 1.0)
    return inside & (score <= FLAT_SLACK * np.quantile(score[inside], FLAT_QUANTILE))


def linear_slope(mean: np.ndarray, gamma: float = 2.2, tone_curve: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Encoded means ``(N,)`` in [0, 1] -> (linear light ``L`` (N,), ``dy/dL`` (N,)) under the
    synthesis's own curve (``synth.to_linear`` / ``synth.from_linear``)."""
    lin = to_linear(torch.as_tensor(mean, dtype=torch.float64), gamma, tone_curve).requires_grad_(True)
    from_linear(lin, gamma, tone_curve).sum().backward()
    return lin.detach().numpy(), lin.grad.numpy()  # type: ignore[union-attr]


# -- one image: its NLF in linear light ----------------------------------------------------------
@dataclass(frozen=True)
class Points:
    """One image's flat tiles in the synthesis's linear light, each ``(N,)``: ``level`` L in
    [0, 1]; ``var`` the high-passed (white) noise variance; ``pixel`` the pixel variance less the
    row noise's share of it; ``row`` a row-noise variance estimate (the image's is their median);
    ``channel`` 0-2."""

    level: np.ndarray
    var: np.ndarray
    pixel: np.ndarray
    row: np.ndarray
    channel: np.ndarray


def linear_points(img: np.ndarray, patch: int = 16, gamma: float = 2.2, tone_curve: bool = True) -> Points:
    """``img: (3, H, W)`` in [0, 1] -> its flat tiles' noise carried back to linear light."""
    parts = []
    for c, channel in enumerate(img):
        s = patch_stats(channel, patch)
        keep = flat(s)
        level, slope = linear_slope(s.mean[keep], gamma, tone_curve)
        g2 = np.maximum(slope, 1e-12) ** 2
        parts.append((level, (s.hp[keep] - ROUNDING_VAR) / g2, (s.rows[keep] - s.cols[keep]) / g2,
                      np.full(keep.sum(), c), (s.var[keep] - ROUNDING_VAR) / g2))
    level, var, row, channel, pixel = (np.concatenate(x) for x in zip(*parts))
    row_var = max(float(np.median(row)), 0.0) if len(row) else 0.0
    share = patch * (patch - 2) / (patch**2 - 3)  # of a row offset's variance, left about a plane
    return Points(level=level, var=var, pixel=pixel - share * row_var, row=row, channel=channel)


@dataclass(frozen=True)
class Nlf:
    """``var = a * level + b`` fitted to bin medians ``x`` (levels), ``y`` (variances), ``n``
    (tiles per bin), each ``(bins,)``."""

    a: float
    b: float
    x: np.ndarray
    y: np.ndarray
    n: np.ndarray


def _bin_medians(level: np.ndarray, var: np.ndarray, bins: int) -> tuple[np.ndarray, ...]:
    """Medians of ``level`` and ``var`` in ``bins`` bins of equal count (by level), and the counts."""
    order = np.argsort(level)
    size, extra = divmod(len(order), bins)
    cut = extra * (size + 1)  # the first ``extra`` bins hold one tile more
    groups = [g for g in (order[:cut].reshape(extra, size + 1), order[cut:].reshape(bins - extra, size)) if g.size]
    x = np.concatenate([np.median(level[g], 1) for g in groups])
    y = np.concatenate([np.median(var[g], 1) for g in groups])
    n = np.concatenate([np.full(len(g), g.shape[1]) for g in groups])
    return x, y, n


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares ``y = a x + b`` with ``a, b >= 0``."""
    a_mat = np.stack([x, np.ones_like(x)], 1) * np.sqrt(w)[:, None]
    a, b = np.linalg.lstsq(a_mat, y * np.sqrt(w), rcond=None)[0]
    if a < 0:  # the best fit with a = 0, or b = 0
        return 0.0, float(np.average(y, weights=w))
    if b < 0:
        return float((w * x * y).sum() / (w * x * x).sum()), 0.0
    return float(a), float(b)


def fit_nlf(level: np.ndarray, var: np.ndarray, bins: int = 10) -> Nlf:
    """Fit ``var = a level + b`` to tiles ``(N,)``: medians in ``bins`` quantile bins of
    ``level``, weighted by ``n / var^2`` (a median's spread grows with its variance), refitted
    after dropping tiles over ``OUTLIER`` times the fit (texture only ever adds variance)."""
    keep = np.ones(len(level), dtype=bool)
    a = b = 0.0
    for step in range(3):
        x, y, n = _bin_medians(level[keep], var[keep], max(2, min(bins, keep.sum() // 20)))
        pred = np.maximum(y if step == 0 else a * x + b, 1e-3 * np.abs(y).max() + 1e-20)
        a, b = _wls(x, y, n / pred**2)
        keep = var <= OUTLIER * np.maximum(a * level + b, 1e-20)
        if keep.sum() < 6:  # nothing close to a straight line: keep the first fit
            keep = np.ones(len(level), dtype=bool)
    return Nlf(a=a, b=b, x=x, y=y, n=n)


def photons_of(a: float) -> float:
    """Photo-electrons at full scale for the shot term ``a`` (capped: ``a = 0`` is no shot noise)."""
    return min(1.0 / a, PHOTONS_CAP) if a > 0 else PHOTONS_CAP


def read_of(b: float) -> float:
    """Read-noise std for the constant term ``b`` (floored: ``b = 0`` is no read noise)."""
    return max(math.sqrt(max(b, 0.0)), READ_FLOOR)


@dataclass(frozen=True)
class ImageFit:
    """One image's noise in the synthesis's terms: ``photons`` and ``read`` from its NLF (in the
    chosen reading), each with its ``(16th, 84th)`` bootstrap percentiles (about one standard
    error); ``row`` the row noise's std in linear light (0 where under two of its standard errors);
    ``correlation`` the median pixel variance over the median high-passed one (1 for white noise);
    ``channels`` per-channel ``(photons, read)``; ``nlf`` the fit in the chosen reading."""

    name: str
    tiles: int
    nlf: Nlf
    photons: float
    read: float
    photons_range: tuple[float, float]
    read_range: tuple[float, float]
    row: float
    correlation: float
    channels: tuple[tuple[float, float], ...] = field(default=())

    @property
    def row_ratio(self) -> float:
        """Row noise as a share of read noise, as the synthesis's ``row_ratio`` key is."""
        return self.row / self.read


def _bootstrap(level: np.ndarray, var: np.ndarray, row: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``BOOTSTRAPS`` refits on tiles drawn with replacement -> photons, read, row variance, each
    ``(BOOTSTRAPS,)``."""
    draws = []
    for _ in range(BOOTSTRAPS):
        i = rng.integers(0, len(level), len(level))
        nlf = fit_nlf(level[i], var[i])
        draws.append((photons_of(nlf.a), read_of(nlf.b), np.median(row[i])))
    return tuple(np.array(d) for d in zip(*draws))  # type: ignore[return-value]


def _interval(draws: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(draws, 16)), float(np.percentile(draws, 84))


def _channels(level: np.ndarray, var: np.ndarray, channel: np.ndarray) -> tuple[tuple[float, float], ...]:
    """Per-channel ``(photons, read)``; empty when a channel has under ``MIN_TILES`` tiles."""
    masks = [channel == c for c in range(3)]
    if any(m.sum() < MIN_TILES for m in masks):
        return ()
    return tuple((photons_of(f.a), read_of(f.b)) for f in (fit_nlf(level[m], var[m]) for m in masks))


def fit_image(name: str, pts: Points, reading: str = "pixel", seed: int = 0) -> ImageFit:
    """Fit one image's flat tiles (``linear_points``, at least ``MIN_TILES``); ``reading``
    ``pixel`` scales the high-passed variance by the image's correlation, ``highpass`` does not."""
    correlation = float(np.median(pts.pixel) / max(np.median(pts.var), 1e-20))
    var = pts.var * (correlation if reading == "pixel" else 1.0)
    nlf = fit_nlf(pts.level, var)
    boot_p, boot_r, boot_row = _bootstrap(pts.level, var, pts.row, np.random.default_rng(seed))
    row_var = float(np.median(pts.row))
    return ImageFit(name=name, tiles=len(pts.level), nlf=nlf, photons=photons_of(nlf.a), read=read_of(nlf.b),
                    photons_range=_interval(boot_p), read_range=_interval(boot_r),
                    row=math.sqrt(row_var) if row_var > 2 * boot_row.std() else 0.0,
                    correlation=correlation, channels=_channels(pts.level, var, pts.channel))


# -- a folder: ranges of recipe keys ------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """The per-image fits, the images left out (``(name, why)``) and the recipe keys."""

    fits: tuple[ImageFit, ...]
    skipped: tuple[tuple[str, str], ...]
    keys: dict[str, float]


def recipe_keys(fits: tuple[ImageFit, ...] | list[ImageFit]) -> dict[str, float]:
    """The ``data:`` keys that cover every image: the lowest to the highest per-image value, each
    widened by its own standard error (bootstrap 16th / 84th percentile) and rounded outwards to
    two significant digits; an image whose photons reach ``PHOTONS_CAP`` within one error (shot
    noise too weak to measure) bounds ``photons_max`` by its own fit. ``row_ratio``: the images'
    median row noise over their median read noise (the synthesis draws ``row = row_ratio * read``)."""
    row_ratio = float(np.median([f.row for f in fits]) / np.median([f.read for f in fits]))
    top = (f.photons_range[1] if f.photons_range[1] < PHOTONS_CAP else f.photons for f in fits)
    return {"photons_min": _round(min(f.photons_range[0] for f in fits), math.floor),
            "photons_max": _round(max(top), math.ceil),
            "read_min": _round(min(f.read_range[0] for f in fits), math.floor),
            "read_max": _round(max(f.read_range[1] for f in fits), math.ceil),
            "row_ratio": _round(row_ratio, round)}


def _round(v: float, how: Callable[[float], int]) -> float:
    """``v > 0`` to two significant digits, ``how`` (``math.floor``, ``math.ceil``, ``round``)."""
    if v <= 0:
        return 0.0
    unit = 10.0 ** (math.floor(math.log10(v)) - 1)
    return float(np.format_float_positional(how(round(v / unit, 9)) * unit, precision=12, trim="-"))


def calibrate(folder: str | Path, patch: int = 16, max_images: int | None = None, reading: str = "pixel",
              gamma: float = 2.2, tone_curve: bool = True, seed: int = 0) -> Calibration:
    """Fit every image of ``folder`` (sorted; the first ``max_images``) and the keys covering them.

    Raises ``ConfigError`` when the folder is missing or holds no image, on a bad ``patch``,
    ``max_images`` or ``reading``, and when no image has ``MIN_TILES`` flat tiles."""
    if patch < 8:
        raise ConfigError(f"patch (--patch): expected a tile side >= 8 pixels, got {patch}")
    if max_images is not None and max_images < 1:
        raise ConfigError(f"max_images (--max-images): expected >= 1, got {max_images}")
    if reading not in READINGS:
        raise ConfigError(f"reading (--reading): {reading!r} is not allowed; allowed: {', '.join(READINGS)}")
    fits, skipped = [], []
    for path in list_images(folder)[:max_images]:
        pts = linear_points(read_image(path).double().numpy(), patch, gamma, tone_curve)
        if len(pts.level) < MIN_TILES:
            skipped.append((path.name, f"{len(pts.level)} flat tiles, needs {MIN_TILES}"))
            log.warning("%s: left out: %s", path.name, skipped[-1][1])
            continue
        fits.append(fit_image(path.name, pts, reading, seed))
    if not fits:
        raise ConfigError(f"{folder}: too few flat tiles to measure noise on (each image needs {MIN_TILES} "
                          f"of {patch}x{patch} pixels, not clipped; try a smaller --patch or larger images)")
    return Calibration(fits=tuple(fits), skipped=tuple(skipped), keys=recipe_keys(fits))


def recipe_lines(keys: dict[str, float], overrides: bool = False) -> list[str]:
    """``key: value`` lines to paste under a recipe's ``data:``, or (``overrides``) one line of
    ``data.key=value`` words for a command line."""
    values = {k: np.format_float_positional(v, trim='-') for k, v in keys.items()}
    if overrides:
        return [" ".join(f"data.{k}={v}" for k, v in values.items())]
    return [f"{k}: {v}" for k, v in values.items()]


def encoded_points(nlf: Nlf, gamma: float = 2.2, tone_curve: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """An NLF's bin points back in the photographs' terms: (mean in 8-bit levels, noise std in
    8-bit levels), each ``(bins,)``."""
    mean = from_linear(torch.as_tensor(nlf.x, dtype=torch.float64), gamma, tone_curve).numpy()
    _, slope = linear_slope(mean, gamma, tone_curve)
    return mean * 255.0, np.sqrt(nlf.y * slope**2 + ROUNDING_VAR) * 255.0
