"""Image IO: exact round trips, Pillow as the reference decoder, and error messages naming the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas_llv.config import ConfigError
from nas_llv.data.io import IMAGE_EXTS, list_images, read_image, to_uint8, write_image

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _mit5() -> Path:
    if not (DATA / "mit5").is_dir():
        pytest.skip(f"{DATA / 'mit5'} is absent")
    return DATA / "mit5"


def _levels(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 255.0


def test_reads_real_images_like_pillow() -> None:
    files = list_images(_mit5() / "low")
    assert [f.name for f in files] == sorted(f.name for f in files) and len(files) == 5
    x = read_image(files[0])
    ref = np.asarray(Image.open(files[0]).convert("RGB"), dtype=np.float64) / 255.0
    assert x.dtype == torch.float32 and x.shape == (3, *ref.shape[:2])
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    np.testing.assert_allclose(x.permute(1, 2, 0).double().numpy(), ref, atol=1e-7)


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_round_trip(tmp_path: Path, ext: str) -> None:
    x = _levels((3, 17, 23))
    path = write_image(tmp_path / "deep" / "er" / f"img{ext}", x)
    assert torch.equal(read_image(path), x)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


@pytest.mark.parametrize("ext", [".jpg", ".jpeg", ".webp"])
def test_lossy_round_trip_is_close(tmp_path: Path, ext: str) -> None:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    x = torch.stack([yy, xx, (yy + xx) / 2])
    y = read_image(write_image(tmp_path / f"img{ext}", x))
    assert y.shape == x.shape and float((y - x).abs().mean()) < 0.02


def test_round_and_truncate_modes(tmp_path: Path) -> None:
    x = torch.full((3, 4, 4), 100.6 / 255.0)
    x[0] = 1.7  # out of range: clipped
    rounded = read_image(write_image(tmp_path / "r.png", x, mode="round")) * 255
    truncated = read_image(write_image(tmp_path / "t.png", x, mode="truncate")) * 255
    assert torch.allclose(rounded[1:], torch.tensor(101.0))
    assert torch.allclose(truncated[1:], torch.tensor(100.0))
    assert torch.allclose(rounded[0], torch.tensor(255.0))
    with pytest.raises(ValueError, match="allowed: round, truncate"):
        write_image(tmp_path / "x.png", x, mode="floor")


def test_to_uint8_matches_numpy_at_every_level_boundary() -> None:
    levels = np.arange(256, dtype=np.float32)
    v = np.concatenate([(levels[:, None] + np.array([-0.5, 0.5], np.float32)).ravel() / np.float32(255),
                        [-0.2, -1e-9, 0.0, 1.0, 1.0 + 1e-6, 3.0]]).astype(np.float32)
    v = np.concatenate([np.nextafter(v, -np.inf), v, np.nextafter(v, np.inf)]).astype(np.float32)
    v = np.resize(v, 3 * (v.size // 3 + 1))
    x = torch.from_numpy(v.reshape(3, 1, -1))
    scaled = np.clip(v, 0, 1) * np.float32(255)  # float32 throughout, as saving from a float32 tensor
    for mode, ref in (("round", np.round(scaled)), ("truncate", scaled.astype(np.uint8))):
        np.testing.assert_array_equal(to_uint8(x, mode), ref.astype(np.uint8).reshape(3, 1, -1).transpose(1, 2, 0))


def test_write_rejects_bad_shape_and_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        write_image(tmp_path / "a.png", torch.zeros(1, 4, 4))
    with pytest.raises(ConfigError, match="unsupported image extension"):
        write_image(tmp_path / "a.gif", torch.zeros(3, 4, 4))


def test_corrupt_and_truncated_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(ConfigError, match=f"{bad}: cannot read image"):
        read_image(bad)
    good = write_image(tmp_path / "cut.png", _levels((3, 64, 64)))
    good.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ConfigError, match="cut.png: cannot read image"):
        read_image(good)
    with pytest.raises(ConfigError, match="missing.png: no such image file"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_grayscale_is_refused(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "gray.png"
    Image.new(mode, (8, 8)).save(path)
    with pytest.raises(ConfigError, match=rf"gray.png: grayscale image \(mode {mode}\); nas-llv needs RGB"):
        read_image(path)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = (np.arange(8 * 8 * 4).reshape(8, 8, 4) % 256).astype(np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    x = read_image(path)
    assert torch.equal(x, torch.from_numpy(rgba[..., :3]).permute(2, 0, 1).float() / 255.0)


def test_list_images_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nowhere: no such folder"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.png").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"no images \(looked for \.png, \.jpg"):
        list_images(tmp_path)
    write_image(tmp_path / "b.PNG", _levels((3, 4, 4)))
    write_image(tmp_path / "a.jpg", _levels((3, 4, 4)))
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert ".png" in IMAGE_EXTS and ".webp" in IMAGE_EXTS
