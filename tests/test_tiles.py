"""Big images (nas_llv/tiles.py, issue 30): tiles with context give the whole-image output, the
automatic side follows the free memory, and a too-large or undecodable file is reported while the
folder goes on."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nas_llv import tiles
from nas_llv.cli import main
from nas_llv.enhance import enhance_folder, enhance_tensor
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.tiles import Tiler, run_tiled


@pytest.fixture(scope="module", params=["ruas_s", "ruas"])
def net(request):
    torch.manual_seed(0)
    return ruas_genotype("cvpr", request.param).build().eval()


@torch.no_grad()
def test_tiles_with_context_give_the_whole_image_output(net):
    y = torch.rand(1, 3, 150, 170)
    whole = enhance_tensor(net, y)
    tiled = run_tiled(lambda t: enhance_tensor(net, t), y, tile=48, pad=32)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1 / 255 / 100  # float rounding, seams included


@torch.no_grad()
def test_without_context_the_seams_show(net):
    # the check above has teeth: with no context, the pixels along the seams differ
    y = torch.rand(1, 3, 96, 96)
    diff = (run_tiled(lambda t: enhance_tensor(net, t), y, tile=48, pad=0) - enhance_tensor(net, y)).abs()
    seams = diff[..., 44:52, :].amax() + diff[..., :, 44:52].amax()
    assert seams > 1e-4 and diff[..., :12, :12].amax() < 1e-6


class _Upscale2(nn.Module):
    """A tiny x2 super-resolution network (3x3 conv, pixel shuffle)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)

    def forward(self, y):
        return nn.functional.pixel_shuffle(self.conv(y), 2)


@torch.no_grad()
def test_a_super_resolution_network_is_tiled_at_its_scale():
    torch.manual_seed(0)
    sr = _Upscale2()
    y = torch.rand(1, 3, 50, 70)
    tiled = run_tiled(sr, y, tile=16, pad=4)
    assert tiled.shape == (1, 3, 100, 140) and torch.allclose(tiled, sr(y), atol=1e-6)


def test_the_automatic_side_follows_the_free_memory(net, monkeypatch):
    fn = lambda t: enhance_tensor(net, t)  # noqa: E731
    y = torch.rand(1, 3, 2100, 2100)  # 4.4 MP: over the size that always runs whole
    monkeypatch.setattr(tiles, "free_memory", lambda device: 1 << 40)
    assert Tiler(fn).side(y) == 0
    monkeypatch.setattr(tiles, "free_memory", lambda device: 400 * 1024 ** 2)
    side = Tiler(fn).side(y)
    per_pixel = tiles.bytes_per_pixel(fn, 3, y.device)
    assert 64 <= side < 2100 and (side + 64) ** 2 * per_pixel <= 200 * 1024 ** 2
    assert Tiler(fn).side(torch.rand(1, 3, 64, 64)) == 0  # small images run whole without a probe


def _photos(folder, sizes):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray((rng.random((h, w, 3)) * 80).astype("uint8")).save(folder / f"{i}.png")


def test_enhance_in_tiles_writes_the_whole_image_levels(tmp_path, net):
    _photos(tmp_path / "in", [(90, 130)])
    enhance_folder(net, tmp_path / "in", tmp_path / "whole", tile=0, progress=False)
    enhance_folder(net, tmp_path / "in", tmp_path / "tiled", tile=40, progress=False)
    a, b = (np.asarray(Image.open(tmp_path / d / "0.png")).astype(int) for d in ("whole", "tiled"))
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3  # a level only where rounding ties


def test_a_file_over_the_pixel_limit_or_too_large_to_decode_is_reported_and_the_folder_goes_on(
        tmp_path, net, capsys, monkeypatch):
    _photos(tmp_path / "in", [(40, 40), (300, 300), (40, 50)])
    model = save_model(tmp_path / "model.pt", ruas_genotype("cvpr", "ruas_s"), ruas_genotype("cvpr", "ruas_s").build())
    rc = main(["enhance", str(model), str(tmp_path / "in"), str(tmp_path / "out"), "--max-pixels", "50000", "-q",
               "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 1 and "1.png: 300x300 is 90,000 pixels, over the limit of 50,000 (--max-pixels)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]

    real_load = Image.Image.load

    def load(self):
        if self.size == (50, 40):
            raise MemoryError
        return real_load(self)
    monkeypatch.setattr(Image.Image, "load", load)
    rc = main(["enhance", str(model), str(tmp_path / "in"), str(tmp_path / "out2"), "-q", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 1 and "2.png: not enough memory to decode this image" in out
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["0.png", "1.png"]


def test_a_rerun_sweeps_the_temp_files_a_killed_enhance_left_and_only_those(tmp_path, net):
    _photos(tmp_path / "in", [(30, 30)])
    out = tmp_path / "out"
    out.mkdir()
    (out / ".0.png.k2j4x9.tmp").write_bytes(b"torn")  # nas_llv.atomic's naming for 0.png
    (out / ".mine.tmp").write_bytes(b"the user's")
    enhance_folder(net, tmp_path / "in", out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [".mine.tmp", "0.png"]


def test_the_command_lines_defaults_are_the_tiles_modules():
    from nas_llv.commands import _images
    assert (_images.PAD, _images.MAX_PIXELS) == (tiles.DEFAULT_PAD, tiles.MAX_PIXELS)
