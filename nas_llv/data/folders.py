"""Image folders as datasets. Items are dicts ``{"low": (3, h, w), "high": (3, H, W), "name": str}``
with tensors float32 in [0, 1]; ``high`` is absent for unpaired data.

Layouts accepted:

- ``PairedFolder(root)``: ``root/low/*`` and ``root/high/*``; a low image pairs with the high
  image of the same file stem (``0137.png`` <-> ``0137.png``, or ``0137.jpg`` <-> ``0137.png``).
  With ``scale`` s (super-resolution) each high image is s times its low image's height and width.
- ``lol(root, split)``: the LOL dataset (Wei et al., BMVC 2018), ``root/our485/{low,high}``
  for ``train`` and ``root/eval15/{low,high}`` for ``eval``.
- ``UnpairedFolder(root)``: every image directly inside ``root`` (no ground truth), e.g. DARK FACE.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Dataset

from nas_llv.config import ConfigError
from nas_llv.data.io import list_images, read_image

log = logging.getLogger(__name__)

LOL_SPLITS = {"train": "our485", "eval": "eval15"}
_SHOW = 5  # unmatched names quoted in an error message


def _by_stem(files: Sequence[Path], folder: Path) -> dict[str, Path]:
    table: dict[str, Path] = {}
    for f in files:
        if f.stem in table:
            raise ConfigError(f"{folder}: two images share the name '{f.stem}' "
                              f"({table[f.stem].name}, {f.name}); keep one")
        table[f.stem] = f
    return table


def _quote(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:_SHOW])
    return shown + (f", ... ({len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def match_pairs(low_dir: Path, high_dir: Path) -> list[tuple[Path, Path]]:
    """Pair ``low_dir`` and ``high_dir`` images by file stem; every image must have a partner."""
    low = _by_stem(list_images(low_dir), low_dir)
    high = _by_stem(list_images(high_dir), high_dir)
    lonely_low = [low[s].name for s in low if s not in high]
    lonely_high = [high[s].name for s in high if s not in low]
    if lonely_low or lonely_high:
        parts = []
        if lonely_low:
            parts.append(f"{len(lonely_low)} in {low_dir} have no partner in {high_dir}: "
                         f"{_quote(lonely_low)}")
        if lonely_high:
            parts.append(f"{len(lonely_high)} in {high_dir} have no partner in {low_dir}: "
                         f"{_quote(lonely_high)}")
        raise ConfigError("unmatched image names (pairs need the same file name): " + "; ".join(parts))
    return [(low[s], high[s]) for s in sorted(low)]


class PairedFolder(Dataset):
    """``root/low`` + ``root/high`` with matching names, high ``scale`` x low; item ``{"low", "high", "name"}``."""

    def __init__(self, root: str | Path, low: str = "low", high: str = "high", scale: int = 1) -> None:
        self.root, self.scale = Path(root), scale
        for sub in (low, high):
            if not (self.root / sub).is_dir():
                raise ConfigError(f"{self.root}: expected sub-folders '{low}/' and '{high}/' "
                                  f"holding images with matching names; '{sub}/' is missing")
        self.pairs = match_pairs(self.root / low, self.root / high)
        log.debug("%s: %d image pairs", self.root, len(self.pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return read_pair(*self.pairs[i], self.scale)


def read_pair(low_path: Path, high_path: Path, scale: int = 1) -> dict[str, Any]:
    """``{"low", "high", "name"}`` of one pair, the ground truth checked to be ``scale`` x its input."""
    low, high = read_image(low_path), read_image(high_path)
    want = (low.shape[1] * scale, low.shape[2] * scale)
    if tuple(high.shape[1:]) != want:
        raise ConfigError(f"{high_path}: ground truth size {tuple(high.shape[1:])} does not fit its input "
                          f"{low_path} {tuple(low.shape[1:])} at scale x{scale}: expected {want}")
    return {"low": low, "high": high, "name": low_path.stem}


class UnpairedFolder(Dataset):
    """Every image inside ``root``, no ground truth; item ``{"low", "name"}``."""

    scale = 1

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files = list_images(self.root)
        log.info("%s: %d images (no ground truth)", self.root, len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"low": read_image(self.files[i]), "name": self.files[i].stem}


LOL_LAYOUT = ("<root>/our485/low/*.png, <root>/our485/high/*.png (485 training pairs) and "
              "<root>/eval15/low/*.png, <root>/eval15/high/*.png (15 evaluation pairs)")


def lol(root: str | Path, split: str = "train") -> PairedFolder:
    """The LOL dataset: ``split`` ``train`` -> ``root/our485``, ``eval`` -> ``root/eval15``."""
    if split not in LOL_SPLITS:
        raise ConfigError(f"LOL split {split!r} is not allowed; allowed: {', '.join(LOL_SPLITS)}")
    root = Path(root)
    folder = root / LOL_SPLITS[split]
    if not ((folder / "low").is_dir() and (folder / "high").is_dir()):
        raise ConfigError(f"{folder}: LOL {split} split not found. Download LOL (LOLdataset.zip, "
                          f"Wei et al. BMVC 2018), unpack it and set data.root=... (or --data) to the folder that "
                          f"holds our485/ and eval15/; expected layout: {LOL_LAYOUT}")
    return PairedFolder(folder)
