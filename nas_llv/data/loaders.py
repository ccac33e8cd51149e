"""Batches for bilevel search and training: a seeded train/validation split and two endless,
resumable batch streams.

Each stream walks a fresh permutation of its subset every epoch (the permutation of epoch ``e``
is a pure function of ``(seed, stream, e)``) and cuts a fresh random crop for every item it
serves (from a ``torch.Generator`` whose state is checkpointed). So consecutive validation
batches differ -- the RUAS reference code kept feeding the first validation image -- and
``state_dict()`` / ``load_state_dict()`` resume exactly the batch sequence an uninterrupted run
would have seen. Epochs run into each other: every batch is full, and an item may repeat inside
a batch only when the subset is smaller than the batch.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from nas_llv.config import ConfigError, Variant, check_range
from nas_llv.data.builders import build_dataset
from nas_llv.distributed import check_batch
from nas_llv.registry import DATASETS

log = logging.getLogger(__name__)

TRAIN, VAL = 0, 1  # stream ids: they decorrelate the two streams' randomness


@dataclass(frozen=True)
class DataConfig(Variant):
    """The ``data:`` section of a recipe: the keys every dataset shares, plus (in ``options``) the
    keys of the dataset ``type`` names (``nas_llv.data.builders``; ``nas-llv list datasets``).

    ``crop`` is the side of the random crop of the *low* image (the ground truth of an x``scale``
    SR pair is cropped ``scale*crop``, aligned); ``None`` serves whole images. ``val_ratio`` is
    the validation share of the bilevel split (RUAS searches on a train/val split).
    """

    type: str = "demo"
    val_ratio: float = 0.5
    crop: int | None = None
    batch_size: int = 1
    scale: int = 1
    seed: int = 0
    num_workers: int = 0
    options: Any = None

    @classmethod
    def variant_registry(cls) -> Any:
        return DATASETS

    def validate(self) -> None:
        check_range("val_ratio", self.val_ratio, 0.0, None, lo_open=True)
        if self.val_ratio >= 1.0:
            raise ValueError(f"val_ratio={self.val_ratio} must be < 1")
        if self.crop is not None:
            check_range("crop", self.crop, 1)
        check_range("batch_size", self.batch_size, 1)
        if self.scale not in (1, 2, 4):
            raise ValueError(f"scale={self.scale} is not allowed; allowed: 1, 2, 4")
        check_range("seed", self.seed, 0)
        check_range("num_workers", self.num_workers, 0)


def _seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integer parts (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def split_indices(n: int, val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, val), each sorted and non-empty."""
    if n < 2:
        raise ConfigError(f"a train/val split needs at least 2 images, the dataset has {n}")
    n_val = min(max(round(n * val_ratio), 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed))).tolist()
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def _crop(item: dict[str, Any], crop: int, scale: int, g: torch.Generator) -> dict[str, Any]:
    h, w = item["low"].shape[-2:]
    if crop > min(h, w):
        raise ConfigError(f"{item['name']}: image {h}x{w} is smaller than data.crop={crop}")
    top = int(torch.randint(0, h - crop + 1, (), generator=g))
    left = int(torch.randint(0, w - crop + 1, (), generator=g))
    out = dict(item, low=item["low"][:, top:top + crop, left:left + crop])
    if "high" in item:
        s = scale
        out["high"] = item["high"][:, s * top:s * (top + crop), s * left:s * (left + crop)]
    return out


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack items into ``{"low": (N, 3, h, w), ["high": (N, 3, H, W)], "name": [str]}``."""
    sizes = {tuple(it["low"].shape) for it in items}
    if len(sizes) > 1:
        names = ", ".join(it["name"] for it in items[:4])
        raise ConfigError(f"images in one batch differ in size ({names}: {sorted(sizes)}); "
                          f"set data.crop or data.batch_size: 1")
    batch: dict[str, Any] = {"low": torch.stack([it["low"] for it in items]),
                             "name": [it["name"] for it in items]}
    if all("high" in it for it in items):
        batch["high"] = torch.stack([it["high"] for it in items])
    return batch


class BatchStream:
    """An endless, resumable iterator of batches over ``dataset`` (see the module docstring)."""

    def __init__(self, dataset: Dataset, batch_size: int, crop: int | None = None, scale: int = 1,
                 seed: int = 0, stream: int = TRAIN, num_workers: int = 0, shard: tuple[int, int] = (0, 1)) -> None:
        if len(dataset) == 0:  # type: ignore[arg-type]
            raise ConfigError("cannot draw batches from an empty dataset")
        # (rank, ranks): this process keeps the rank-th of ``ranks`` equal slices of each batch
        self.shard = shard
        self.dataset, self.batch_size, self.crop, self.scale = dataset, batch_size, crop, scale
        self.seed, self.stream, self.num_workers = seed, stream, num_workers
        self.position = 0  # items served so far, over all epochs
        self._rng = torch.Generator().manual_seed(_seed(seed, stream, 1))
        self._perm: tuple[int, list[int]] | None = None
        self._pool = ThreadPoolExecutor(num_workers) if num_workers > 0 else None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def epoch_length(self) -> int:
        """Batches needed to serve every item once."""
        return math.ceil(len(self) / self.batch_size)

    @property
    def epoch(self) -> int:
        return self.position // len(self)

    def _permutation(self, epoch: int) -> list[int]:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(_seed(self.seed, self.stream, 2, epoch))
            self._perm = (epoch, torch.randperm(len(self), generator=g).tolist())
        return self._perm[1]

    def _next_indices(self) -> list[int]:
        out = []
        for _ in range(self.batch_size):
            epoch, pos = divmod(self.position, len(self))
            out.append(self._permutation(epoch)[pos])
            self.position += 1
        return out

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> dict[str, Any]:
        indices = self._next_indices()
        rank, ranks = self.shard
        own = slice(rank * self.batch_size // ranks, (rank + 1) * self.batch_size // ranks)
        # With crops every rank loads the whole batch: the crops follow one generator in item order
        # (and need each image's size), so the shards are fixed by the global stream, whose state
        # resumes them all. Without crops a rank loads its own items only.
        if self.crop is None:
            indices, own = indices[own], slice(None)
        # Loading may run in threads; every random draw stays here, in item order.
        load = self._pool.map if self._pool is not None else map
        items = list(load(self.dataset.__getitem__, indices))
        if self.crop is not None:
            items = [_crop(it, self.crop, self.scale, self._rng) for it in items]
        return collate(items[own])

    def state_dict(self) -> dict[str, Any]:
        """Where the stream is: position, crop RNG state, and what it was built from."""
        return {"position": self.position, "rng": self._rng.get_state(), "seed": self.seed,
                "stream": self.stream, "size": len(self), "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; the stream must be built on the same data, seed and batch size."""
        mine = {"seed": self.seed, "stream": self.stream, "size": len(self), "batch_size": self.batch_size}
        theirs = {k: state.get(k) for k in mine}
        if theirs != mine:
            raise ConfigError(f"data stream state does not fit this stream: saved {theirs}, now {mine}")
        self.position = int(state["position"])
        self._rng.set_state(state["rng"])

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def build_loaders(cfg: DataConfig, shard: tuple[int, int] = (0, 1)) -> tuple[BatchStream, BatchStream]:
    """Dataset ``cfg.type`` split by ``cfg.seed`` into endless (train, val) batch streams; ``shard``
    (rank, ranks) keeps one of ``ranks`` equal slices of each ``cfg.batch_size`` batch."""
    try:
        cfg.validate()
    except ValueError as exc:
        raise ConfigError(f"data: {exc}") from None
    check_batch(cfg.batch_size, shard[1])
    dataset = build_dataset(cfg)
    ds_scale = getattr(dataset, "scale", 1)
    if ds_scale != cfg.scale:
        raise ConfigError(f"data.scale={cfg.scale} but type '{cfg.type}' gives x{ds_scale} pairs; "
                          f"use scale: 1 for enhancement data, or an SR type (rellisur, demo_sr)")
    # a dataset may split itself (synth's val_photos: by photograph); else a seeded item split
    split = getattr(dataset, "split_items", None)
    train_idx, val_idx = (split(cfg.val_ratio, cfg.seed) if split is not None
                          else split_indices(len(dataset), cfg.val_ratio, cfg.seed))  # type: ignore[arg-type]
    log.info("data '%s': %d train / %d val items", cfg.type, len(train_idx), len(val_idx))
    common = dict(batch_size=cfg.batch_size, crop=cfg.crop, scale=cfg.scale, seed=cfg.seed,
                  num_workers=cfg.num_workers, shard=shard)
    return (BatchStream(Subset(dataset, train_idx), stream=TRAIN, **common),
            BatchStream(Subset(dataset, val_idx), stream=VAL, **common))
