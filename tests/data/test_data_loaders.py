"""Endless, resumable batch streams: split, crops, reshuffling, varying validation, exact resume."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from nas_llv.config import ConfigError, from_dict
from nas_llv.data import (BatchStream, DataConfig, TensorPairs, UnpairedFolder, build_loaders, split_indices,
                          write_image)


def _cfg(**kw: object) -> DataConfig:
    demo = {"demo_count": 8, "demo_size": 32} if kw.get("type", "demo") in ("demo", "demo_sr") else {}
    base = {"type": "demo", **demo, "batch_size": 2, "crop": 16}
    return from_dict(DataConfig, {**base, **kw}, "data")


def _take(stream: BatchStream, n: int) -> list[dict]:
    return [next(stream) for _ in range(n)]


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(x["name"] == y["name"] and torch.equal(x["low"], y["low"])
               and torch.equal(x["high"], y["high"]) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("bad, match", [
    ({"val_ratio": 1.0}, "val_ratio=1.0 must be < 1"), ({"val_ratio": 0}, "val_ratio=0.0 must be > 0"),
    ({"batch_size": 0}, "batch_size=0 must be >= 1"), ({"scale": 3}, "allowed: 1, 2, 4"),
    ({"crop": 0}, "crop=0"), ({"type": "nope"}, "allowed: demo, demo_sr, folder, lol, noisy_demo, paired, rellisur"),
    ({"shuffle": True}, "unknown key 'shuffle'"),
])
def test_config_is_checked(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _cfg(**bad)


def test_split_is_seeded_disjoint_and_complete() -> None:
    tr, va = split_indices(10, 0.3, seed=5)
    assert len(va) == 3 and sorted(tr + va) == list(range(10))
    assert (tr, va) == split_indices(10, 0.3, seed=5) and (tr, va) != split_indices(10, 0.3, seed=6)
    assert [len(s) for s in split_indices(2, 0.01, 0)] == [1, 1]
    with pytest.raises(ConfigError, match="at least 2 images"):
        split_indices(1, 0.5, 0)


def test_batch_shapes_lengths_and_crops() -> None:
    train, val = build_loaders(_cfg(val_ratio=0.25))
    assert (len(train), len(val)) == (6, 2) and (train.epoch_length, val.epoch_length) == (3, 1)
    b = next(train)
    assert b["low"].shape == b["high"].shape == (2, 3, 16, 16) and len(b["name"]) == 2
    whole, _ = build_loaders(_cfg(crop=None))
    assert next(whole)["low"].shape == (2, 3, 32, 32)
    with pytest.raises(ConfigError, match=r"image 32x32 is smaller than data.crop=33"):
        next(build_loaders(_cfg(crop=33))[0])


def test_epochs_cover_the_subset_and_reshuffle() -> None:
    train, _ = build_loaders(_cfg(demo_count=16, batch_size=1, crop=8))
    epochs = [[next(train)["name"][0] for _ in range(train.epoch_length)] for _ in range(3)]
    assert all(sorted(e) == sorted(epochs[0]) and len(set(e)) == 8 for e in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_consecutive_val_batches_differ() -> None:
    _, val = build_loaders(_cfg(demo_count=2, batch_size=1, crop=8))  # a single validation image
    batches = _take(val, 4)
    assert {b["name"][0] for b in batches} == {batches[0]["name"][0]}
    assert all(not torch.equal(a["low"], b["low"]) for a, b in zip(batches, batches[1:]))


def test_resume_reproduces_the_uninterrupted_sequence() -> None:
    cfg = _cfg(seed=7)
    reference = _take(build_loaders(cfg)[1], 7)  # 4 val items, 2 per batch: crosses 3 epochs
    val = build_loaders(cfg)[1]
    head = _take(val, 3)
    buf = io.BytesIO()
    torch.save(val.state_dict(), buf)
    resumed = build_loaders(cfg)[1]
    buf.seek(0)
    resumed.load_state_dict(torch.load(buf))
    assert _same(head + _take(resumed, 4), reference)
    assert not _same(_take(build_loaders(cfg)[1], 4), reference[3:])  # a fresh stream does not
    with pytest.raises(ConfigError, match="does not fit this stream"):
        build_loaders(_cfg(seed=8))[1].load_state_dict(val.state_dict())


def test_threads_give_the_same_batches() -> None:
    assert _same(_take(build_loaders(_cfg(num_workers=2))[0], 4), _take(build_loaders(_cfg())[0], 4))


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_crops_stay_aligned(scale: int) -> None:
    g = torch.Generator().manual_seed(0)
    lows = [torch.rand(3, 12, 10, generator=g) for _ in range(3)]
    highs = [lo.repeat_interleave(scale, 1).repeat_interleave(scale, 2) for lo in lows]
    stream = BatchStream(TensorPairs(lows, highs, ["a", "b", "c"], scale), 2, crop=5, scale=scale)
    for b in _take(stream, 5):
        assert b["low"].shape == (2, 3, 5, 5) and b["high"].shape == (2, 3, 5 * scale, 5 * scale)
        up = b["low"].repeat_interleave(scale, 2).repeat_interleave(scale, 3)
        assert torch.equal(up, b["high"])


def test_demo_sr_loaders_and_scale_mismatch() -> None:
    train, _ = build_loaders(_cfg(type="demo_sr", scale=4, demo_size=64, crop=8))
    b = next(train)
    assert b["low"].shape == (2, 3, 8, 8) and b["high"].shape == (2, 3, 32, 32)
    with pytest.raises(ConfigError, match="scale=2 but type 'demo' gives x1 pairs"):
        build_loaders(_cfg(scale=2))


def test_unpaired_folder_batches_and_size_mismatch(tmp_path: Path) -> None:
    for i, w in enumerate([20, 20, 24, 24]):
        write_image(tmp_path / f"{i}.png", torch.full((3, 16, w), i / 4))
    train, _ = build_loaders(_cfg(type="folder", root=str(tmp_path), crop=8))
    b = next(train)
    assert set(b) == {"low", "name"} and b["low"].shape == (2, 3, 8, 8)
    stream = BatchStream(UnpairedFolder(tmp_path), 4)
    with pytest.raises(ConfigError, match="differ in size.*set data.crop"):
        next(stream)
