"""Folder datasets on tiny temporary trees (and the real mit5/darkface5 images when present)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nas_llv.config import ConfigError
from nas_llv.data import LowLightSRFolder, PairedFolder, UnpairedFolder, lol, write_image
from nas_llv.registry import DATASETS

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _img(seed: int, h: int = 8, w: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, h, w), generator=g).float() / 255.0


def _pairs(folder: Path, names: list[str], high_names: list[str] | None = None) -> None:
    for i, n in enumerate(names):
        write_image(folder / "low" / n, _img(i) * 0.2)
    for i, n in enumerate(high_names if high_names is not None else names):
        write_image(folder / "high" / n, _img(i))


def test_paired_folder_matches_by_name(tmp_path: Path) -> None:
    _pairs(tmp_path, ["b.png", "a.png", "c.png"])
    ds = PairedFolder(tmp_path)
    assert len(ds) == 3 and [ds[i]["name"] for i in range(3)] == ["a", "b", "c"]
    item = ds[1]
    assert torch.equal(item["high"], _img(0))  # b.png was written first, with seed 0
    assert item["low"].shape == item["high"].shape == (3, 8, 8)


def test_paired_mismatch_lists_names(tmp_path: Path) -> None:
    _pairs(tmp_path, ["a.png", "b.png", "x1.png"], ["a.png", "b.png", "y1.png", "y2.png"])
    with pytest.raises(ConfigError) as err:
        PairedFolder(tmp_path)
    msg = str(err.value)
    assert "1 in" in msg and "x1.png" in msg and "2 in" in msg and "y1.png, y2.png" in msg
    with pytest.raises(ConfigError, match="'low/' is missing"):
        PairedFolder(tmp_path / "low")


def test_paired_size_mismatch_names_the_file(tmp_path: Path) -> None:
    write_image(tmp_path / "low" / "a.png", _img(0, 8, 8))
    write_image(tmp_path / "high" / "a.png", _img(0, 8, 10))
    with pytest.raises(ConfigError, match=r"a.png: ground truth size \(8, 10\) does not fit its input .*a.png "
                                          r"\(8, 8\) at scale x1: expected \(8, 8\)"):
        PairedFolder(tmp_path)[0]


def test_lol_layout(tmp_path: Path) -> None:
    _pairs(tmp_path / "our485", ["1.png", "2.png", "3.png"])
    _pairs(tmp_path / "eval15", ["9.png"])
    assert len(lol(tmp_path, "train")) == 3
    ev = lol(tmp_path, "eval")
    assert len(ev) == 1 and ev[0]["name"] == "9"
    built = DATASETS.build({"type": "lol", "root": str(tmp_path), "split": "eval"})
    assert torch.equal(built[0]["low"], ev[0]["low"])
    with pytest.raises(ConfigError, match="allowed: train, eval"):
        lol(tmp_path, "test")


def test_lol_missing_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        lol(tmp_path / "LOL", "train")
    msg = str(err.value)
    assert "LOL train split not found" in msg and "our485/low" in msg and "eval15/high" in msg


def test_unpaired_folder(tmp_path: Path) -> None:
    for i in range(3):
        write_image(tmp_path / f"n{i}.jpg", _img(i))
    ds = UnpairedFolder(tmp_path)
    assert len(ds) == 3 and set(ds[0]) == {"low", "name"}
    with pytest.raises(ConfigError, match="needs data.root"):
        DATASETS.build({"type": "folder"})


def test_real_folders() -> None:
    if not (DATA / "mit5").is_dir() or not (DATA / "darkface5").is_dir():
        pytest.skip(f"{DATA} is absent")
    mit = PairedFolder(DATA / "mit5")
    assert len(mit) == 5
    item = mit[0]
    assert item["low"].shape == item["high"].shape and item["low"].mean() < item["high"].mean()
    dark = UnpairedFolder(DATA / "darkface5")
    assert len(dark) == 5 and dark[0]["low"].shape == (3, 720, 1080)


def _rellisur(root: Path, scale: int) -> None:
    """Two scenes, two exposures each: LLLR/<id>-<ev>.png and NLHR/X<s>/<id>.png."""
    for i, scene in enumerate(["00001", "00002"]):
        hr = _img(i, 8 * scale, 8 * scale)
        write_image(root / "Train" / "NLHR" / f"X{scale}" / f"{scene}.png", hr)
        lin = F.avg_pool2d(hr[None], scale)[0] if scale > 1 else hr
        for ev in ("2.5", "3.5"):
            write_image(root / "Train" / "LLLR" / f"{scene}-{ev}.png", lin * 0.2)


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rellisur_layout_prefix_match(tmp_path: Path, scale: int) -> None:
    _rellisur(tmp_path, scale)
    ds = LowLightSRFolder(tmp_path, "train", scale)
    assert len(ds) == 4 and [p[1].stem for p in ds.pairs] == ["00001", "00001", "00002", "00002"]
    item = ds[3]
    assert item["name"] == "00002-3.5" and torch.equal(item["high"], _img(1, 8 * scale, 8 * scale))
    assert item["low"].shape == (3, 8, 8) and item["high"].shape == (3, 8 * scale, 8 * scale)


def test_generic_sr_layout_and_errors(tmp_path: Path) -> None:
    write_image(tmp_path / "hr" / "a.png", _img(0, 16, 16))
    write_image(tmp_path / "lr_x4" / "a.png", _img(0, 4, 4))
    ds = DATASETS.build({"type": "rellisur", "root": str(tmp_path), "scale": 4})
    assert len(ds) == 1 and ds.scale == 4 and ds[0]["high"].shape == (3, 16, 16)
    with pytest.raises(ConfigError, match=r"no low-light SR data for split 'train' at x2.*NLHR/X2"):
        LowLightSRFolder(tmp_path, "train", 2)
    write_image(tmp_path / "hr" / "b.png", _img(0, 12, 12))
    write_image(tmp_path / "lr_x4" / "b_dark.png", _img(1, 4, 4))
    write_image(tmp_path / "lr_x4" / "zz.png", _img(1, 4, 4))
    with pytest.raises(ConfigError, match="1 inputs have no ground truth.*: zz.png$"):
        LowLightSRFolder(tmp_path, "train", 4)
    (tmp_path / "lr_x4" / "zz.png").unlink()
    with pytest.raises(ConfigError, match=r"b.png: ground truth size \(12, 12\) does not fit its input .* at scale x4"):
        LowLightSRFolder(tmp_path, "train", 4)[1]


def test_sr_inputs_stored_per_scale(tmp_path: Path) -> None:
    """LLLR/X<s>/ inputs against one NLHR/X1/ ground truth, split folder named in any case."""
    write_image(tmp_path / "val" / "NLHR" / "X1" / "7.png", _img(0, 16, 16))
    write_image(tmp_path / "val" / "LLLR" / "X2" / "7.png", _img(1, 8, 8))
    ds = LowLightSRFolder(tmp_path, "val", 2)
    assert ds.lr_dir.name == "X2" and ds[0]["high"].shape == (3, 16, 16) and ds[0]["name"] == "7"
