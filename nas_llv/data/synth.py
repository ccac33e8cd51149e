"""Low-light synthesis (``data.type: synth``): normal-light photographs darkened by a seeded,
physically based camera model into (low, high) pairs, or low images alone (``paired: false``).

Pipeline for one item (docs/data.md; all draws from a ``torch.Generator`` seeded by
``(data.seed, item index)``, so an item is a pure function of both and a resumed run sees
exactly the data an uninterrupted one would):

1. ``high``: a random square crop (half to all of the short side) of a source photograph,
   resized to ``synth_size`` and quantised to 8 bits;
2. unprocess to linear light (Brooks et al. 2019, "Unprocessing images for learned raw
   denoising"): invert the smoothstep tone curve ``s(x) = 3x^2 - 2x^3`` with
   ``x = 1/2 - sin(asin(1 - 2y) / 3)``, then undo the gamma: ``L = x^gamma``;
3. under-expose and cast: ``L' = k * w_c * L`` with exposure ``k ~ logU[exposure_min,
   exposure_max]`` and white-balance error ``w_c = exp(u_c - mean(u))``, ``u_c ~ U[-cast, cast]``
   (a hue shift with geometric mean 1, so it changes colour, not exposure);
4. sensor noise (Wei et al. 2020, "A physics-based noise formation model for extreme low-light
   raw denoising", Eq. 2 with Gaussian read noise): shot noise ``P(p * L') / p`` with ``p ~
   logU[photons_min, photons_max]`` photo-electrons at full scale (``shot: gaussian``: its
   heteroscedastic Gaussian approximation ``L' + sqrt(L'/p) * n``), read noise ``N(0, r^2)``
   with ``r ~ logU[read_min, read_max]``, and row (banding) noise ``N(0, (row_ratio * r)^2)``
   drawn once per image row and shared by its pixels and channels; clip to [0, 1];
5. process back: ``y = s(L''^(1/gamma))``, quantised to 8 bits (``low``).

Without exposure change, cast and noise, steps 2-5 return the 8-bit ``high`` unchanged.

Sources: every image under ``root`` (recursively), or, without ``root``, the photo sets that
``sources`` names (``nas_llv.data.photos``; default: the photographs the required packages
bundle). ``val_photos`` keeps photographs for validation alone (``SynthPairs.split_items``).
Evaluation images are refused: a ``root`` that is, holds or lies inside the shared MIT, DARK
FACE or LOL evaluation folders, or holds an image whose pixels equal one of ``../shared/data``'s
(where that folder is present).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from nas_llv.config import ConfigError, check_range
from nas_llv.data.demo import _crop_resize, _log_uniform, _uniform
from nas_llv.data.io import is_image, read_image
from nas_llv.data.loaders import _seed, split_indices
from nas_llv.data.photos import BUNDLED, bundled_image, check_sources, resolve  # noqa: F401 (re-exported)
from nas_llv.registry import DATASETS

log = logging.getLogger(__name__)

SHOT_MODELS = ("poisson", "gaussian")
EVAL_FOLDERS = ("mit5", "darkface5", "eval15")  # MIT pairs, DARK FACE, LOL's evaluation split


# -- the camera model ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Darkening:
    """One draw of the model (module docstring): exposure ``k``, channel gains ``wb`` (3,),
    photons at full scale ``photons`` (``inf``: no shot noise), read and row noise std."""

    exposure: float
    wb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    photons: float = math.inf
    read: float = 0.0
    row: float = 0.0


def inverse_smoothstep(y: torch.Tensor) -> torch.Tensor:
    """Inverse of ``3x^2 - 2x^3`` on [0, 1] (Brooks et al. 2019)."""
    return 0.5 - torch.sin(torch.asin(1.0 - 2.0 * y.clamp(0.0, 1.0)) / 3.0)


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    return 3.0 * x**2 - 2.0 * x**3


def to_linear(x: torch.Tensor, gamma: float = 2.2, tone_curve: bool = True) -> torch.Tensor:
    """sRGB-like ``x`` in [0, 1] -> linear light in [0, 1] (steps 2)."""
    x = inverse_smoothstep(x) if tone_curve else x.clamp(0.0, 1.0)
    return x.clamp_min(1e-8) ** gamma


def from_linear(lin: torch.Tensor, gamma: float = 2.2, tone_curve: bool = True) -> torch.Tensor:
    """Inverse of ``to_linear`` (step 5 before quantisation)."""
    x = lin.clamp(1e-8, 1.0) ** (1.0 / gamma)
    return smoothstep(x) if tone_curve else x


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round ``x`` in [0, 1] to the nearest of 256 levels."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def sensor_noise(signal: torch.Tensor, d: Darkening, shot: str = "poisson",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Shot, read and row noise on linear ``signal: (3, H, W)``, clipped to [0, 1] (step 4)."""
    if math.isfinite(d.photons):
        if shot == "poisson":
            signal = torch.poisson(signal * d.photons, generator=generator) / d.photons
        else:
            signal = signal + (signal / d.photons).sqrt() * _normal(signal.shape, generator)
    noisy = signal + d.read * _normal(signal.shape, generator)
    if d.row:
        noisy = noisy + d.row * _normal((1, signal.shape[-2], 1), generator)
    return noisy.clamp(0.0, 1.0)


def _normal(shape: Any, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(shape, generator=generator)


def synthesise(high: torch.Tensor, d: Darkening, gamma: float = 2.2, tone_curve: bool = True,
               shot: str = "poisson", generator: torch.Generator | None = None,
               quantised: bool = True) -> torch.Tensor:
    """``high: (3, H, W)`` in [0, 1] -> its low-light copy ``(3, H, W)`` (steps 2-5)."""
    lin = to_linear(high, gamma, tone_curve) * d.exposure * torch.tensor(d.wb).view(3, 1, 1)
    low = from_linear(sensor_noise(lin, d, shot, generator), gamma, tone_curve)
    return quantise(low) if quantised else low


# -- the dataset --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynthOptions:
    """``synth``: ``synth_count`` items of ``synth_size`` pixels darkened from ``root``'s images (or
    the photo sets ``sources`` names); ``val_photos``: photographs (``SET/PHOTO``, a set, or under
    ``root`` a path without suffix or a folder) that only validation uses; the model's ranges as in
    the module docstring."""

    root: str | None = None
    sources: tuple[str, ...] = ("bundled",)
    val_photos: tuple[str, ...] = ()
    synth_count: int = 256
    synth_size: int = 128
    paired: bool = True
    exposure_min: float = 0.02
    exposure_max: float = 0.2
    cast: float = 0.1
    shot: str = "poisson"
    photons_min: float = 300.0
    photons_max: float = 3000.0
    read_min: float = 1e-3
    read_max: float = 5e-3
    row_ratio: float = 0.0
    gamma: float = 2.2
    tone_curve: bool = True

    def validate(self) -> None:
        check_sources(self.sources)
        if self.root is not None and tuple(self.sources) != ("bundled",):
            raise ValueError(f"root and sources exclude each other (root={self.root!r}, sources={list(self.sources)})")
        check_range("synth_count", self.synth_count, 2)
        check_range("synth_size", self.synth_size, 8)
        check_range("exposure_min", self.exposure_min, 0.0, 1.0, lo_open=True)
        check_range("exposure_max", self.exposure_max, self.exposure_min, 1.0)
        check_range("cast", self.cast, 0.0, 1.0)
        if self.shot not in SHOT_MODELS:
            raise ValueError(f"shot={self.shot!r} is not allowed; allowed: {', '.join(SHOT_MODELS)}")
        check_range("photons_min", self.photons_min, 1.0)
        check_range("photons_max", self.photons_max, self.photons_min)
        check_range("read_min", self.read_min, 0.0)
        check_range("read_max", self.read_max, self.read_min, 1.0)
        check_range("row_ratio", self.row_ratio, 0.0)
        check_range("gamma", self.gamma, 1.0)


def sample_darkening(o: SynthOptions, g: torch.Generator) -> Darkening:
    """One draw of the model's parameters from ``o``'s ranges."""
    u = [_uniform(g, -o.cast, o.cast) for _ in range(3)]
    mean = sum(u) / 3
    read = _log_uniform(g, o.read_min, o.read_max) if o.read_max > 0 else 0.0
    return Darkening(exposure=_log_uniform(g, o.exposure_min, o.exposure_max),
                     wb=tuple(math.exp(v - mean) for v in u),  # type: ignore[arg-type]
                     photons=_log_uniform(g, o.photons_min, o.photons_max), read=read, row=o.row_ratio * read)


class SynthPairs(Dataset):
    """Item ``i``: ``{"low", ["high",] "name"}`` (3, size, size) in [0, 1], from source ``i % n``."""

    scale = 1

    def __init__(self, options: SynthOptions, seed: int = 0) -> None:
        try:
            options.validate()
        except ValueError as exc:
            raise ConfigError(f"data: {exc}") from None
        self.options, self.seed = options, seed
        if options.root is None:
            self.names, loaders = resolve(options.sources)
            self._load: Callable[[int], torch.Tensor] = lambda j: loaders[j]()
        else:
            files = source_files(options.root)
            self.names = [str(f.relative_to(options.root).with_suffix("")) for f in files]
            self._load = functools.lru_cache(maxsize=64)(
                lambda j: read_image(files[j]).mul(255.0).round().to(torch.uint8))
        self.val_sources = held_out(self.names, options.val_photos)
        log.info("synth: %d items from %d source images (%s)%s", options.synth_count, len(self.names),
                 options.root or ", ".join(options.sources),
                 f", {len(self.val_sources)} of them for validation only" if self.val_sources else "")

    def __len__(self) -> int:
        return self.options.synth_count

    def item(self, i: int) -> tuple[dict[str, Any], Darkening]:
        """Item ``i`` and the darkening it was drawn with."""
        o, j = self.options, i % len(self.names)
        g = torch.Generator().manual_seed(_seed(self.seed, i))
        high = quantise(_crop_resize(self._load(j), o.synth_size, g))
        d = sample_darkening(o, g)
        low = synthesise(high, d, o.gamma, o.tone_curve, o.shot, g)
        out = {"low": low, "high": high, "name": f"{Path(self.names[j]).name}_{i:04d}"}
        if not o.paired:
            del out["high"]
        return out, d

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.item(i)[0]

    def split_items(self, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
        """(train, val) item indices. With ``val_photos``, by photograph: validation items come
        from those photographs alone and training items never (``val_ratio`` unused); else the
        seeded item split of ``split_indices``."""
        if not self.val_sources:
            return split_indices(len(self), val_ratio, seed)
        val = [i for i in range(len(self)) if i % len(self.names) in self.val_sources]
        train = sorted(set(range(len(self))) - set(val))
        if not val or not train:
            raise ConfigError(f"data.val_photos: synth_count={len(self)} items never reach the "
                              f"{'validation' if not val else 'training'} photographs (item i darkens "
                              f"photograph i % {len(self.names)}); raise synth_count")
        return train, val


def held_out(names: list[str], val_photos: tuple[str, ...]) -> set[int]:
    """Indices of ``names`` that ``val_photos`` names (a name, or a set or folder above it); a
    ConfigError when an entry names none, or when none is left for training."""
    held: set[int] = set()
    for entry in val_photos:
        hits = {j for j, n in enumerate(names) if n == entry or n.startswith(entry.rstrip("/") + "/")}
        if not hits:
            shown = ", ".join(names[:12]) + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
            raise ConfigError(f"data.val_photos: '{entry}' names no source photograph; they are: {shown}")
        held |= hits
    if held and len(held) == len(names):
        raise ConfigError(f"data.val_photos: all {len(names)} source photographs are held out; none is left for training")
    return held


@DATASETS.register("synth", config=SynthOptions)
def build_synth(seed: int = 0, **options: Any) -> SynthPairs:
    """Low-light pairs (or low images) synthesised from ``root`` or the photo sets ``sources`` names."""
    return SynthPairs(SynthOptions(**options), seed)


# -- evaluation images are never training data -------------------------------------------------
def source_files(root: str | Path) -> list[Path]:
    """Every image under ``root`` (recursively, sorted), after refusing evaluation images."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data.root {root}: no such folder (synth takes a folder of normal-light images)")
    files = sorted(p for p in root.rglob("*") if is_image(p))
    if not files:
        raise ConfigError(f"data.root {root}: no images under it (synth takes a folder of normal-light images)")
    check_not_evaluation(root, files)
    return files


def shared_data_dirs() -> list[Path]:
    """``../shared/data`` beside the working folder and beside the checkout, where present."""
    here = Path(__file__).resolve().parents[3]
    dirs = {p.resolve() for p in (Path.cwd().parent / "shared" / "data", here / "shared" / "data") if p.is_dir()}
    return sorted(dirs)


def check_not_evaluation(root: Path, files: list[Path]) -> None:
    """Refuse ``root`` when it is, holds or lies in an evaluation folder, or holds an image whose
    pixels equal one of the shared evaluation images."""
    real = root.resolve()
    for shared in shared_data_dirs():
        for ev in (shared / name for name in EVAL_FOLDERS):
            if ev.is_dir() and (real == ev or ev in real.parents or real in ev.parents):
                raise ConfigError(f"data.root {root}: overlaps the evaluation images {ev}; they are test data only")
    for f in files:
        if set(EVAL_FOLDERS) & {*real.parts, *f.relative_to(root).parts[:-1], *f.resolve().parts[:-1]}:
            raise ConfigError(f"data.root {root}: {f} lies in an evaluation folder "
                              f"({', '.join(EVAL_FOLDERS)}); they are test data only")
    known = eval_hashes(tuple(shared_data_dirs()))
    for f in files:
        if _size(f) in known and _pixel_hash(f) in known[_size(f)]:
            raise ConfigError(f"data.root {root}: {f} is one of the shared evaluation images; they are test data only")


def _size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except OSError:
        return (0, 0)  # unreadable: read_image names it when the item is drawn


def _pixel_hash(path: Path) -> str:
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return hashlib.sha256(arr.tobytes()).hexdigest()


@functools.lru_cache(maxsize=None)
def eval_hashes(shared: tuple[Path, ...]) -> dict[tuple[int, int], set[str]]:
    """``{(width, height): {pixel hashes}}`` of every image under the shared data folders."""
    table: dict[tuple[int, int], set[str]] = {}
    for folder in shared:
        for f in folder.rglob("*"):
            if is_image(f):
                table.setdefault(_size(f), set()).add(_pixel_hash(f))
    return table
