"""Noise calibration (nas_llv.data.noisecal, ``nas-llv data noise``): its tile statistics are
right on white noise, and it recovers the photons, read and row noise that the project's own
synthesis put into real photographs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.data.io import read_image, write_image
from nas_llv.data.noisecal import (PHOTONS_CAP, ImageFit, Nlf, calibrate, fit_image, linear_points, patch_stats,
                                   recipe_keys)
from nas_llv.data.synth import Darkening, SynthOptions, bundled_image, synthesise

TOLERANCE = 1.25  # photons and read within 25%, as the calibration promises (docs/data.md)
SOURCES = ("astronaut", "motorcycle_left")


def test_tile_statistics_on_white_noise_and_banding():
    rng = np.random.default_rng(0)
    sigma, rho, p = 0.05, 0.02, 16
    y = 0.5 + sigma * rng.standard_normal((512, 512))
    s = patch_stats(y, p)
    assert np.median(s.hp) == pytest.approx(sigma**2, rel=0.05)  # gain 1 on white noise
    assert np.median(s.var) == pytest.approx(sigma**2, rel=0.05)
    assert abs(np.mean(s.rows - s.cols)) < 0.1 * sigma**2 / p  # no banding: rows and columns alike
    banded = patch_stats(y + rho * rng.standard_normal((512, 1)), p)
    assert np.median(banded.hp) == pytest.approx(sigma**2, rel=0.05)  # banding leaves the high-pass alone
    assert np.mean(banded.rows - banded.cols) == pytest.approx(rho**2, rel=0.15)


def _synthesised(folder, photons: float, read: float, row_ratio: float):
    """The bundled photographs darkened tenfold with known noise, written as 8-bit PNGs."""
    g = torch.Generator().manual_seed(1)
    d = Darkening(exposure=0.1, photons=photons, read=read, row=row_ratio * read)
    for name in SOURCES:
        write_image(folder / f"{name}.png", synthesise(bundled_image(name).float() / 255, d, generator=g))
    return folder


@pytest.mark.parametrize("photons, read, row_ratio", [(1000.0, 0.002, 0.0), (500.0, 0.004, 1.0)])
def test_recovers_the_synthesis_parameters(tmp_path, photons, read, row_ratio):
    folder = _synthesised(tmp_path, photons, read, row_ratio)
    points = [linear_points(read_image(f).double().numpy()) for f in sorted(folder.iterdir())]
    fits = [fit_image(str(i), pts, reading="highpass") for i, pts in enumerate(points)]
    for f in fits:
        assert 1 / TOLERANCE < f.photons / photons < TOLERANCE, f
        assert 1 / TOLERANCE < f.read / read < TOLERANCE, f
        assert f.row_ratio == pytest.approx(row_ratio, abs=0.25), f
        assert f.correlation < 1.25, f  # white noise: the pixel and the high-passed variance agree
    keys = recipe_keys(fits)
    assert keys["photons_min"] < photons < keys["photons_max"] and keys["read_min"] < read < keys["read_max"]
    for pts in points:  # the synthesis's noise is white: the pixel reading holds too
        assert 1 / TOLERANCE < fit_image("pixel", pts, reading="pixel").photons / photons < TOLERANCE


def test_keys_cover_every_image_rounded_outwards():
    def fit(photons, low, high, read):
        nlf = Nlf(a=1 / photons, b=read**2, x=np.zeros(2), y=np.zeros(2), n=np.zeros(2))
        return ImageFit("x", 100, nlf, photons, read, (low, high), (read * 0.9, read * 1.1), 0.5 * read, 1.0)

    keys = recipe_keys([fit(1000, 912, 1093, 0.002), fit(50_000, 40_000, PHOTONS_CAP, 0.001)])
    # the second image's shot noise is too weak to bound from above: its own fit bounds the range
    assert keys == {"photons_min": 910, "photons_max": 50_000, "read_min": 0.0009, "read_max": 0.0022,
                    "row_ratio": 0.5}


def test_command_prints_keys_a_recipe_accepts(tmp_path, capsys):
    folder = _synthesised(tmp_path, 1000.0, 0.002, 0.0)
    assert main(["data", "noise", str(folder), "--max-images", "1"]) == 0
    out, err = capsys.readouterr()
    keys = yaml.safe_load(out)
    assert set(keys) == {"photons_min", "photons_max", "read_min", "read_max", "row_ratio"}
    SynthOptions(**keys).validate()
    assert "astronaut.png" in err and "motorcycle_left.png" not in err and "noise level function" in err
    assert math.isclose(keys["row_ratio"], 0.0, abs_tol=0.25)
    # the same keys as overrides a recipe load takes (the README's own-photos route splices them in)
    assert main(["data", "noise", str(folder), "--max-images", "1", "--overrides"]) == 0
    words = capsys.readouterr().out.split()
    assert {w.split("=")[0]: yaml.safe_load(w.split("=")[1]) for w in words} == {f"data.{k}": v for k, v in keys.items()}


@pytest.mark.parametrize("make, argv, message", [
    (lambda d: d / "absent", [], "no such folder"),
    (lambda d: d, [], "no images"),
    (lambda d: write_image(d / "tiny.png", torch.rand(3, 20, 20)).parent, [], "too few flat tiles"),
    (lambda d: write_image(d / "a.png", torch.rand(3, 20, 20)).parent, ["--patch", "4"], "--patch"),
])
def test_bad_input_is_one_line(tmp_path, capsys, make, argv, message):
    folder = make(tmp_path)
    assert main(["data", "noise", str(folder), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    with pytest.raises(ConfigError, match=message.lstrip("-")):
        calibrate(folder, patch=4 if argv else 16)
