"""Bad input beyond the corpus of tests/test_bad_input.py (issue 27): ONNX files the engine cannot
feed, an unknown engine from Python, run folders that cannot be written, and refused or no-op
resumes. Each is one line (exit 2 on the command line, a ConfigError in Python) and leaves the
files as they were, bytes and modification times."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.export.modelfile import save_model
from nas_llv.space.genotype import Genotype
from nas_llv.space.spec import load_space


def _snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under ``root``: (its bytes, None for a folder; its modification time in ns)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in [root, *root.rglob("*")]}


def _one_line_exit_2(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _pairs(root: Path, size: int = 20) -> Path:
    for sub in ("low", "high"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(np.full((size, size + 4, 3), 90, np.uint8)).save(root / sub / "a.png")
    return root


def _model(path: Path) -> Path:
    space = load_space("ruas_denoise")
    geno = Genotype({"type": "single"}, {"net": space}, {e.label: "conv_3x3" for e in space.cell.searchable})
    save_model(path, geno, geno.build(channels=3, repeat=1), build={"channels": 3, "repeat": 1})
    return path


# -- ONNX files the onnx engine cannot feed ------------------------------------------------------

class _Conv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv(y)


class _Reshaped(nn.Module):
    """Any size in its declared input, but a graph that only runs on 16x16 images (a traced reshape)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(1, 3, 16, 16) * 2


def _onnx(path: Path, net: nn.Module, shape: tuple[int, ...], dynamic: bool = True) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    axes = {"low": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(*shape),), str(path), input_names=["low"], output_names=["x"],
                          dynamo=False, dynamic_axes=axes)
    return path


@pytest.mark.parametrize("command", ["enhance", "eval"])
@pytest.mark.parametrize("graph, expect", [
    ("gray", "its input 'low' has shape (batch, 1, height, width): it takes 1-channel images, not RGB"),
    ("fixed", "its input 'low' has shape (1, 3, 32, 32): it takes 32x32 images only"),
])
def test_an_onnx_file_of_another_input_shape_is_one_line(tmp_path, monkeypatch, capsys, command, graph, expect):
    monkeypatch.chdir(tmp_path)
    net, shape, dynamic = {"gray": (_Conv(1), (1, 1, 16, 16), True), "fixed": (_Conv(3), (1, 3, 32, 32), False)}[graph]
    _onnx(tmp_path / "m.onnx", net, shape, dynamic)
    _pairs(tmp_path / "p")
    argv = (["enhance", "m.onnx", "p/low", "out"] if command == "enhance" else
            ["eval", "m.onnx", "--data", "p", "--lpips-net", "none", "-q"])
    before = _snapshot(tmp_path)
    line = _one_line_exit_2([*argv, "--engine", "onnx"], capsys)
    assert f"m.onnx: {expect}" in line and "(1, 3, H, W)" in line
    assert _snapshot(tmp_path) == before


def test_an_onnx_graph_that_fails_on_an_image_names_the_file_and_both_shapes(tmp_path, monkeypatch, capsys):
    from nas_llv.export.onnx import OnnxNet

    path = _onnx(tmp_path / "m.onnx", _Reshaped(), (1, 3, 16, 16))
    with pytest.raises(ConfigError) as info:
        OnnxNet(path)(torch.rand(1, 3, 20, 24))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "(1, 3, 20, 24)" in message and "(batch, 3, height, width)" in message
    monkeypatch.chdir(tmp_path)
    _pairs(tmp_path / "p")
    before = _snapshot(tmp_path)
    line = _one_line_exit_2(["eval", "m.onnx", "--data", "p", "--lpips-net", "none", "-q", "--engine", "onnx"], capsys)
    assert "m.onnx: onnxruntime cannot run it on an image of shape (1, 3, 20, 24)" in line
    assert _snapshot(tmp_path) == before


# -- an unknown engine from Python ------------------------------------------------------------------

def test_evaluate_with_an_unknown_engine_raises_config_error_naming_the_engines(tmp_path):
    from nas_llv import pipeline as p

    model, pairs = _model(tmp_path / "m.pt"), _pairs(tmp_path / "p")
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown engine 'bogus'; allowed: compiled, fast, onnx, torch"):
        p.evaluate(model, pairs, engine="bogus", lpips_net="none")
    with pytest.raises(KeyError):  # still a KeyError for code that looks names up
        p.enhance(model, pairs / "low", tmp_path / "out", engine="bogus")
    assert _snapshot(tmp_path) == before
