"""ONNX export (nas_llv.export.onnx, ``nas-llv export``, ``enhance --engine onnx``): every kind of
derived network exported once and run by onnxruntime at several sizes from that one file (dynamic
axes), within 1e-4 of torch: RUAS (the published CVPR weights where ../shared is present), RUAS_A
with its gate open, shut and both in one batch, and LL-SR networks; the shared MIT images
(500x333) where present, tiny random images always. Skipped when onnx/onnxruntime are absent."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.space.genotype import Genotype, declared_labels
from nas_llv.space.spec import load_space

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TOL = 1e-4


@pytest.fixture
def onnx():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from nas_llv.export import onnx as module
    return module


def _check(onnx, net: torch.nn.Module, path: Path, images: list[torch.Tensor], scale: int = 1) -> float:
    ort_net = onnx.OnnxNet(path)
    for y in images:
        assert ort_net(y).shape == (y.shape[0], 3, y.shape[2] * scale, y.shape[3] * scale)
    diff = onnx.max_difference(net, ort_net, images)
    assert diff <= TOL
    return diff


@pytest.mark.parametrize("variant", ["ruas_s", "ruas"])
def test_ruas_matches_onnxruntime_at_every_size(onnx, variant, tmp_path, sample_images, cvpr_ruas):
    net = cvpr_ruas if variant == "ruas" else ruas_genotype("cvpr", variant).build().eval()
    path = onnx.export_onnx(net, tmp_path / "net.onnx")
    _check(onnx, net, path, sample_images())
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left


def _ruas_a(threshold: float) -> torch.nn.Module:
    net = ruas_genotype("tpami", "ruas_a").build(channels={"denoise": 6}, repeat={"denoise": 1}).eval()
    net.threshold = threshold
    return net


@pytest.mark.parametrize("threshold", [0.0, 1e9], ids=["gate-open", "gate-shut"])
def test_ruas_a_gate_survives_export(onnx, threshold, tmp_path, sample_images):
    net = _ruas_a(threshold)
    y = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        out = net(y)
    expected = out["x"] if threshold == 0 else out["u"]
    assert not torch.equal(out["x"], out["u"]) or threshold > 0  # the open gate does change the image
    path = onnx.export_onnx(net, tmp_path / "gate.onnx")
    torch.testing.assert_close(onnx.OnnxNet(path)(y), expected, rtol=0, atol=TOL)
    _check(onnx, net, path, sample_images(1))


def test_ruas_a_gate_decides_per_image_in_one_graph(onnx, tmp_path):
    """A threshold between two images' noise levels: one graph denoises the one and passes the other."""
    net = _ruas_a(0.0)
    y = torch.stack([torch.rand(3, 16, 16), torch.full((3, 16, 16), 0.5)])
    with torch.no_grad():
        levels = net(y)["noise"]
    assert levels[0] != levels[1]
    net.threshold = float(levels.mean())
    with torch.no_grad():
        out = net(y)
    noisy = int(levels.argmax())
    path = onnx.export_onnx(net, tmp_path / "gate.onnx")
    got = onnx.OnnxNet(path)(y)
    torch.testing.assert_close(got, out["x"], rtol=0, atol=TOL)
    torch.testing.assert_close(got[1 - noisy], out["u"][1 - noisy], rtol=0, atol=TOL)  # passed through
    assert not torch.allclose(got[noisy], out["u"][noisy], atol=1e-3)  # denoised


def _llsr(model: str, **pick: str) -> Genotype:
    """The single-space LL-SR genotype choosing ``pick`` where given, else the first candidate."""
    network, spaces = {"type": "single"}, {"net": load_space(model)}
    choices = {label: pick.get(label, cands[0]) for label, cands in declared_labels(network, spaces).items()}
    return Genotype(network, spaces, choices)


@pytest.mark.parametrize("model,pick,mit", [
    ("trico_llsr", {"upscaler": "pixelshuffle"}, 1),
    ("trico_llsr", {"upscaler": "msmu"}, 0),  # MSMU at 1000x666 takes half a minute on one thread
    ("collaba_llsr", {"modulation": "dcft", "upscaler": "bicubic_conv"}, 1),
])
def test_llsr_matches_onnxruntime_at_every_size(onnx, model, pick, mit, tmp_path, sample_images):
    net = _llsr(model, **pick).build().eval()
    path = onnx.export_onnx(net, tmp_path / "sr.onnx")
    _check(onnx, net, path, sample_images(mit), scale=2)


# -- the command line ----------------------------------------------------------------------------
def _tiny_model(path: Path) -> Path:
    geno = ruas_genotype("cvpr", "ruas")
    return save_model(path, geno, geno.build().eval())


def _folder(path: Path) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(20, 28), (17, 31)]):
        Image.fromarray(rng.integers(0, 120, (h, w, 3), dtype=np.uint8)).save(path / f"{i}.png")
    return path


def test_export_then_enhance_with_both_engines(onnx, tmp_path, capsys):
    model = _tiny_model(tmp_path / "m.pt")
    assert main(["export", str(model), "-o", str(tmp_path / "m.onnx"), "--opset", "17"]) == 0
    assert "max |torch - onnx|" in capsys.readouterr().out
    src = SHARED / "mit5" / "low" if (SHARED / "mit5" / "low").is_dir() else _folder(tmp_path / "low")
    assert main(["enhance", str(model), str(src), str(tmp_path / "t"), "-q", "--device", "cpu"]) == 0
    assert main(["enhance", str(tmp_path / "m.onnx"), str(src), str(tmp_path / "o"), "-q", "--engine", "onnx"]) == 0
    names = sorted(p.name for p in (tmp_path / "t").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "o").iterdir()) and names
    for name in names:
        a = np.asarray(Image.open(tmp_path / "t" / name), dtype=int)
        b = np.asarray(Image.open(tmp_path / "o" / name), dtype=int)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1  # within 1/255


@pytest.mark.parametrize("args,expect", [
    (["--opset", "5"], "--opset 5: not supported; allowed: 11..20"),
    (["-o", "."], "is a folder"),
])
def test_export_errors_are_one_line(onnx, args, expect, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _tiny_model(tmp_path / "m.pt")
    assert main(["export", "m.pt", *(args if "-o" in args else ["-o", "m.onnx", *args])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0]
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("args,expect", [
    (["m.onnx", "--device", "cuda"], "the engine onnx runs on the CPU only"),
    (["m.onnx", "--output", "u"], "the engine onnx gives x only"),
    (["junk.onnx"], "onnxruntime cannot load this file"),
    (["nope.onnx"], "no such ONNX file"),
])
def test_onnx_engine_errors_are_one_line(onnx, args, expect, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    onnx.export_onnx(ruas_genotype("cvpr", "ruas_s").build(), tmp_path / "m.onnx")
    _tiny_model(tmp_path / "m.pt")
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07")
    _folder(tmp_path / "low")
    model, *rest = args
    assert main(["enhance", model, "low", "out", "-q", "--engine", "onnx", *rest]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err


def test_export_help_states_the_opsets_of_the_exporter(capsys):
    from nas_llv.export.onnx import DEFAULT_OPSET, OPSETS  # noqa: the module imports torch, not onnx

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert f"{OPSETS.start}..{OPSETS.stop - 1} (default: {DEFAULT_OPSET})" in " ".join(capsys.readouterr().out.split())


def test_torch_engine_refuses_an_onnx_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07")
    _folder(tmp_path / "low")
    assert main(["enhance", "m.onnx", "low", "out", "-q"]) == 2
    assert "run it with --engine onnx" in capsys.readouterr().err


def test_without_onnx_export_says_how_to_install(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("onnx") else real(name, *a))
    model = _tiny_model(tmp_path / "m.pt")
    assert main(["export", str(model), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e '.[onnx]'" in err[0]
    assert not (tmp_path / "m.onnx").exists()
    with pytest.raises(ConfigError, match="not installed"):
        from nas_llv.export.onnx import require_onnx
        require_onnx()
