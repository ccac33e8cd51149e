"""Low-light super-resolution pairs: a low-light low-resolution input and its normal-light
high-resolution ground truth, ``scale`` times larger (RELLISUR, Aakerberg et al., NeurIPS 2021
Datasets and Benchmarks; used by CollaBA and TriCo for x2 and x4).

Items: ``{"low": (3, h, w), "high": (3, scale*h, scale*w), "name": str}``, float32 in [0, 1].

Layouts accepted (tried in this order; ``<split>`` folder names match case-insensitively,
``train`` -> ``Train``, ``val`` -> ``Val``, ``test``/``eval`` -> ``Test``):

1. RELLISUR as released: the low-light input has one size, the ground truth comes in three::

       <root>/<Split>/LLLR/<id>-<ev>.png        (or LLLR/X1/) low-light low-res inputs
       <root>/<Split>/NLHR/X<scale>/<id>.png    normal-light ground truth at scale x

   This is what the papers describe: "624x624 to an output of 1248x1248" (x2) and "to
   2496x2496" (x4) in CollaBA, and 3,610 training pairs per scale, i.e. every scene has
   several low-light exposures sharing one ground truth.
2. Inputs stored per scale against one ground truth: ``<Split>/LLLR/X<scale>/`` + ``<Split>/NLHR/X1/``
   (or ``NLHR/``).
3. A generic layout: ``<root>[/<split>]/lr_x<scale>/`` (low-light low-res) + ``<root>[/<split>]/hr/``.

Names: an input pairs with the ground truth of the same stem, or, failing that, with the
longest ground-truth stem that prefixes it followed by ``-``, ``_`` or ``.`` (RELLISUR names
its exposures ``<id>-<ev>``, so ``00001-2.5`` -> ``00001``). Every input needs a ground truth.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from nas_llv.config import ConfigError
from nas_llv.data.folders import read_pair
from nas_llv.data.io import is_image, list_images

log = logging.getLogger(__name__)

_SEPARATORS = "-_."

SPLIT_DIRS = {"train": "train", "val": "val", "test": "test", "eval": "test"}  # the split folders


def _child(folder: Path, name: str) -> Path | None:
    """``folder/name`` matched case-insensitively, or None."""
    if not folder.is_dir():
        return None
    exact = folder / name
    if exact.is_dir():
        return exact
    return next((p for p in sorted(folder.iterdir()) if p.is_dir() and p.name.lower() == name.lower()), None)


def _walk(folder: Path | None, *names: str) -> Path | None:
    for name in names:
        if folder is None:
            return None
        folder = _child(folder, name)
    return folder


def _has_images(folder: Path | None) -> bool:
    return folder is not None and folder.is_dir() and any(is_image(p) for p in folder.iterdir())


def _candidates(root: Path, split: str, scale: int) -> list[tuple[Path | None, Path | None]]:
    s = _walk(root, SPLIT_DIRS[split])
    x = f"X{scale}"
    return [
        (_walk(s, "LLLR"), _walk(s, "NLHR", x)),
        (_walk(s, "LLLR", "X1"), _walk(s, "NLHR", x)),
        (_walk(s, "LLLR", x), _walk(s, "NLHR", "X1")),
        (_walk(s, "LLLR", x), _walk(s, "NLHR")),
        (_walk(s, f"lr_x{scale}"), _walk(s, "hr")),
        (_walk(root, f"lr_x{scale}"), _walk(root, "hr")),
    ]


def find_sr_folders(root: Path, split: str, scale: int) -> tuple[Path, Path]:
    """The (low-light LR folder, normal-light HR folder) for ``split`` and ``scale``."""
    if split not in SPLIT_DIRS:
        raise ConfigError(f"low-light SR split {split!r} is not allowed; allowed: {', '.join(SPLIT_DIRS)}")
    for lr, hr in _candidates(root, split, scale):
        if _has_images(lr) and _has_images(hr):
            return lr, hr  # type: ignore[return-value]
    raise ConfigError(
        f"{root}: no low-light SR data for split '{split}' at x{scale}. Expected RELLISUR "
        f"(<root>/{split.capitalize()}/LLLR/*.png + <root>/{split.capitalize()}/NLHR/X{scale}/*.png) "
        f"or <root>[/{split}]/lr_x{scale}/ + <root>[/{split}]/hr/ with matching file names")


def _match_stem(stem: str, hr: dict[str, Path]) -> Path | None:
    if stem in hr:
        return hr[stem]
    cuts = [i for i, c in enumerate(stem) if c in _SEPARATORS and i > 0]
    for i in reversed(cuts):  # longest prefix first
        if stem[:i] in hr:
            return hr[stem[:i]]
    return None


def match_sr_pairs(lr_dir: Path, hr_dir: Path) -> list[tuple[Path, Path]]:
    """Pair every input in ``lr_dir`` with its ground truth in ``hr_dir`` (exact or prefix stem)."""
    hr = {p.stem: p for p in list_images(hr_dir)}
    pairs, lonely = [], []
    for lr in list_images(lr_dir):
        gt = _match_stem(lr.stem, hr)
        if gt is None:
            lonely.append(lr.name)
        else:
            pairs.append((lr, gt))
    if lonely:
        shown = ", ".join(lonely[:5]) + (f", ... ({len(lonely) - 5} more)" if len(lonely) > 5 else "")
        raise ConfigError(f"{lr_dir}: {len(lonely)} inputs have no ground truth in {hr_dir} "
                          f"(same stem, or stem + '-'/'_'/'.' suffix): {shown}")
    unused = len(set(hr.values()) - {gt for _, gt in pairs})
    if unused:
        log.warning("%s: %d ground-truth images have no low-light input; they are not used", hr_dir, unused)
    return pairs


class LowLightSRFolder(Dataset):
    """Low-light LR inputs with normal-light HR ground truth ``scale`` times larger (see module doc)."""

    def __init__(self, root: str | Path, split: str = "train", scale: int = 2) -> None:
        if scale not in (1, 2, 4):
            raise ConfigError(f"scale={scale} is not allowed; allowed: 1, 2, 4")
        self.root, self.split, self.scale = Path(root), split, scale
        self.lr_dir, self.hr_dir = find_sr_folders(self.root, split, scale)
        self.pairs = match_sr_pairs(self.lr_dir, self.hr_dir)
        log.info("%s: %d low-light x%d SR pairs (%s, %s)", self.root, len(self.pairs), scale,
                 self.lr_dir, self.hr_dir)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return read_pair(*self.pairs[i], self.scale)
