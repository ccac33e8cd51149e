"""Every registered inference engine (nas_llv.inference.engines) gives the plain network's images, up
to float rounding, and ``eval --engine onnx`` scores a model file and an ONNX file alike."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.inference.engine import get_engine, prepare
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.registry import ENGINES

HAS_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
HAS_CXX = shutil.which("g++") is not None or shutil.which("c++") is not None


def _model(path: Path, variant: str = "ruas_s") -> Path:
    torch.manual_seed(0)
    geno = ruas_genotype("cvpr", variant)
    return save_model(path, geno, geno.build().eval())


def _skip_unavailable(name: str) -> None:
    if name == "onnx" and not HAS_ONNX:
        pytest.skip("onnx and onnxruntime are not installed (the onnx extra)")
    if name == "compiled" and not HAS_CXX:
        pytest.skip("torch.compile on CPU needs a C++ compiler")


def test_the_four_engines_are_registered():
    assert {"torch", "fast", "compiled", "onnx"} <= set(ENGINES.names())


@pytest.mark.parametrize("name", ENGINES.names())
def test_every_engine_gives_the_plain_networks_images(name, tmp_path):
    _skip_unavailable(name)
    model = _model(tmp_path / "model.pt")
    plain = prepare(model, "torch", "cpu")
    ready = prepare(model, name, "cpu")
    assert ready.scale == plain.scale == 1 and ready.device == torch.device("cpu")
    with torch.no_grad():
        for y in (torch.rand(1, 3, 20, 28), torch.rand(1, 3, 17, 31)):
            want, got = plain.runner(y), ready.runner(y)
            want = want if isinstance(want, torch.Tensor) else want["x"]
            got = got if isinstance(got, torch.Tensor) else got["x"]
            assert got.shape == want.shape
            assert (got - want).abs().max() < 1e-4


def test_an_unknown_engine_lists_the_registered_ones(tmp_path):
    with pytest.raises(KeyError, match="unknown engine 'turbo'; allowed: .*fast.*torch"):
        prepare(_model(tmp_path / "m.pt"), "turbo", "cpu")


def test_a_cpu_only_engine_refuses_cuda_in_one_line():
    engine = get_engine("onnx")
    with pytest.raises(ConfigError, match="runs on the CPU only"):
        engine.device("cuda:0")


def _pairs(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        high = rng.integers(40, 250, (40, 48, 3)).astype(np.uint8)
        for sub, img in (("high", high), ("low", high // 4)):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / sub / f"{name}.png")
    return root


@pytest.mark.skipif(not HAS_ONNX, reason="onnx and onnxruntime are not installed (the onnx extra)")
def test_eval_engine_onnx_scores_a_model_file_and_its_onnx_file_as_torch_does(tmp_path, capsys):
    model = _model(tmp_path / "m" / "model.pt", "ruas")
    data = _pairs(tmp_path / "pairs")
    assert main(["export", str(model), "-o", str(tmp_path / "m.onnx")]) == 0
    common = ["--data", str(data), "--repeats", "1", "--warmup", "0", "--lpips-net", "none", "--device", "cpu", "-q"]
    scores = {}
    for label, target, engine in (("torch", model, "torch"), ("onnx-model", model, "onnx"),
                                  ("onnx-file", tmp_path / "m.onnx", "onnx")):
        out = tmp_path / f"eval-{label}"
        assert main(["eval", str(target), *common, "--engine", engine, "-o", str(out)]) == 0
        scores[label] = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out
    for label in ("onnx-model", "onnx-file"):
        assert scores[label]["engine"] == "onnx"
        assert scores[label]["psnr"] == pytest.approx(scores["torch"]["psnr"], abs=1e-3)
        assert scores[label]["ssim"] == pytest.approx(scores["torch"]["ssim"], abs=1e-4)
    # a model file: the model's params and FLOPs; an ONNX file has no torch network to count
    assert (scores["onnx-model"]["params"], scores["onnx-model"]["flops"]) == (scores["torch"]["params"],
                                                                               scores["torch"]["flops"])
    assert scores["onnx-file"]["params"] is None and scores["onnx-file"]["flops"] is None
    assert "params: not counted (an ONNX file has no torch network)" in printed
