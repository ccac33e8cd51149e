"""Dataset builders registered in ``nas_llv.registry.DATASETS``, each with its options dataclass.

A recipe's ``data:`` section holds the keys every dataset shares (``DataConfig``) and those of
the dataset it names (its options below); a key of another dataset is an error naming it. A
builder's keyword names are its options' fields (or ``**options``) plus any shared ones it needs (``scale``,
``seed``), so ``build_dataset(cfg)`` passes exactly those, and ``DATASETS.build({"type": "lol",
"root": ...})`` works directly too. Adding a dataset: a builder and its options here.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from nas_llv.config import ConfigError, check_range
from nas_llv.data.demo import demo_pairs, demo_sr_pairs
from nas_llv.data.folders import PairedFolder, UnpairedFolder, lol
from nas_llv.data.rellisur import LowLightSRFolder
from nas_llv.registry import DATASETS


def _need_root(kind: str, root: str | None) -> str:
    if root is None:
        raise ConfigError(f"dataset type '{kind}' needs data.root (a folder)")
    return root


@dataclass(frozen=True)
class DemoOptions:
    """The embedded demo sets: ``demo_count`` photographs at ``demo_size`` pixels (the HR size for SR)."""

    demo_count: int = 8
    demo_size: int = 128

    def validate(self) -> None:
        check_range("demo_count", self.demo_count, 2)
        check_range("demo_size", self.demo_size, 8)


@dataclass(frozen=True)
class FolderOptions:
    """A folder on disk (``root``)."""

    root: str | None = None


@dataclass(frozen=True)
class SplitFolderOptions:
    """A dataset root with named splits (LOL: train, eval; RELLISUR: train, val, test)."""

    root: str | None = None
    split: str = "train"


@DATASETS.register("demo", config=DemoOptions)
def build_demo(demo_count: int = 8, demo_size: int = 128, seed: int = 0) -> Dataset:
    """Embedded low-light pairs darkened from scikit-image photographs (``nas_llv.data.demo``)."""
    return demo_pairs(count=demo_count, size=demo_size, seed=seed)


@DATASETS.register("demo_sr", config=DemoOptions)
def build_demo_sr(scale: int = 2, demo_count: int = 8, demo_size: int = 128, seed: int = 0) -> Dataset:
    """Embedded low-light SR pairs: ``demo_size`` HR ground truth, ``demo_size/scale`` input."""
    return demo_sr_pairs(scale=scale, count=demo_count, size=demo_size, seed=seed)


@DATASETS.register("folder", config=FolderOptions)
def build_folder(root: str | None = None) -> Dataset:
    """Every image in ``root``, no ground truth (e.g. DARK FACE night photographs)."""
    return UnpairedFolder(_need_root("folder", root))


@DATASETS.register("paired", config=FolderOptions)
def build_paired(root: str | None = None, scale: int = 1) -> Dataset:
    """``root/low`` + ``root/high`` with matching file names (high ``scale`` x low)."""
    return PairedFolder(_need_root("paired", root), scale=scale)


@DATASETS.register("lol", config=SplitFolderOptions)
def build_lol(root: str | None = None, split: str = "train") -> Dataset:
    """LOL: ``root/our485`` (``train``) or ``root/eval15`` (``eval``)."""
    return lol(_need_root("lol", root), split)


@DATASETS.register("rellisur", config=SplitFolderOptions)
def build_rellisur(root: str | None = None, split: str = "train", scale: int = 2) -> Dataset:
    """RELLISUR-style low-light SR pairs (layouts in ``nas_llv.data.rellisur``)."""
    return LowLightSRFolder(_need_root("rellisur", root), split, scale)


def build_dataset(cfg: Any) -> Dataset:
    """Build ``DATASETS[cfg.type]`` from its options and the shared keys it takes (a DataConfig)."""
    fn = DATASETS.get(cfg.type)
    params = inspect.signature(fn).parameters
    kwargs = {n: getattr(cfg, n) for n, p in params.items() if p.kind is not p.VAR_KEYWORD and hasattr(cfg, n)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()) and cfg.options is not None:
        kwargs.update(dataclasses.asdict(cfg.options))  # a builder taking **options gets all of its options
    return fn(**kwargs)
