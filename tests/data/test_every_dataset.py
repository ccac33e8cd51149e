"""Walk the dataset registry: each registered dataset builds from a minimal config (tiny sizes, a
tiny folder for those read from disk) and yields a batch of the documented shape and range:
``low`` (N, 3, h, w) in [0, 1], and on paired data ``high`` (N, 3, scale*h, scale*w) in [0, 1]."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from nas_llv.data import collate, write_image
from nas_llv.registry import DATASETS


def _pairs(low: Path, high: Path, scale: int = 1, names: tuple[str, ...] = ("a", "b")) -> None:
    for i, name in enumerate(names):
        g = torch.Generator().manual_seed(i)
        write_image(high / f"{name}.png", torch.rand(3, 8 * scale, 8 * scale, generator=g))
        write_image(low / f"{name}.png", 0.2 * torch.rand(3, 8, 8, generator=g))


def _folder(root: Path) -> dict[str, Any]:
    for i in range(2):
        write_image(root / f"n{i}.png", 0.2 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(i)))
    return {"root": str(root)}


def _paired(root: Path) -> dict[str, Any]:
    _pairs(root / "low", root / "high")
    return {"root": str(root)}


def _lol(root: Path) -> dict[str, Any]:
    _pairs(root / "our485" / "low", root / "our485" / "high")
    return {"root": str(root), "split": "train"}


def _rellisur(root: Path) -> dict[str, Any]:
    _pairs(root / "Train" / "LLLR", root / "Train" / "NLHR" / "X2", scale=2)
    return {"root": str(root), "split": "train", "scale": 2}


# dataset -> (minimal config from a tmp folder, paired?, scale); a new dataset needs a row
MINIMAL: dict[str, tuple[Callable[[Path], dict[str, Any]], bool, int]] = {
    "demo": (lambda d: {"demo_count": 2, "demo_size": 16}, True, 1),
    "demo_sr": (lambda d: {"demo_count": 2, "demo_size": 16, "scale": 2}, True, 2),
    "noisy_demo": (lambda d: {"noisy_count": 2, "noisy_size": 16}, True, 1),
    "synth": (lambda d: {"synth_count": 2, "synth_size": 16}, True, 1),
    "folder": (_folder, False, 1),
    "paired": (_paired, True, 1),
    "lol": (_lol, True, 1),
    "rellisur": (_rellisur, True, 2),
}


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_builds_and_yields_a_batch_of_the_documented_shape(name, tmp_path):
    assert name in MINIMAL, f"dataset '{name}' has no minimal config in MINIMAL"
    config, paired, scale = MINIMAL[name]
    ds = DATASETS.build({"type": name, **config(tmp_path)})
    batch = collate([ds[0], ds[1]])
    low = batch["low"]
    assert low.dtype == torch.float32 and low.shape[:2] == (2, 3) and 0 <= low.min() and low.max() <= 1
    assert ("high" in batch) == paired
    if paired:
        high = batch["high"]
        assert high.shape == (2, 3, scale * low.shape[2], scale * low.shape[3])
        assert high.dtype == torch.float32 and 0 <= high.min() and high.max() <= 1
