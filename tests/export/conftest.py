"""Fixtures of the export tests: sample images and the published CVPR RUAS network."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
import torch

from nas_llv.data import list_images, read_image
from nas_llv.export.ruas_import import import_ruas, ruas_genotype

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture
def sample_images() -> Callable[[int], list[torch.Tensor]]:
    """``sample_images(count=2)``: tiny random images at two sizes (one odd, batch 2), plus ``count``
    shared MIT images (500x333) where present."""
    def make(count: int = 2) -> list[torch.Tensor]:
        images = [torch.rand(1, 3, 16, 24), torch.rand(2, 3, 21, 13)]
        mit = SHARED / "mit5" / "low"
        if mit.is_dir():
            images += [read_image(p)[None] for p in list_images(mit)[:count]]
        return images
    return make


@pytest.fixture
def cvpr_ruas() -> torch.nn.Module:
    """The CVPR RUAS network with the published ``lol.pt`` weights where present, else random ones."""
    weights = SHARED / "ruas_cvpr_weights" / "lol.pt"
    return import_ruas(weights)[0] if weights.is_file() else ruas_genotype("cvpr", "ruas").build().eval()
