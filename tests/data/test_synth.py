"""Low-light synthesis (nas_llv.data.synth): seeded, its statistics follow its parameters, 8-bit,
and evaluation images are refused as sources."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from nas_llv.config import ConfigError, from_dict
from nas_llv.data import DataConfig, build_loaders
from nas_llv.data.io import write_image
from nas_llv.data.synth import (BUNDLED, Darkening, SynthOptions, SynthPairs, from_linear, sensor_noise,
                                synthesise, to_linear)
from nas_llv.registry import DATASETS

SMALL = dict(synth_count=4, synth_size=16)


def test_same_seed_same_items_other_seed_other_items():
    a, b = SynthPairs(SynthOptions(**SMALL), seed=3), SynthPairs(SynthOptions(**SMALL), seed=3)
    c = SynthPairs(SynthOptions(**SMALL), seed=4)
    for i in range(2):
        assert torch.equal(a[i]["low"], b[i]["low"]) and torch.equal(a[i]["high"], b[i]["high"])
        assert not torch.equal(a[i]["low"], c[i]["low"])
    assert a.item(0)[1] == b.item(0)[1] != c.item(0)[1]
    assert not torch.equal(a[0]["low"], a[len(BUNDLED)]["low"])  # same source, another crop and draw


def test_items_are_8_bit_and_darker_than_their_ground_truth():
    ds = SynthPairs(SynthOptions(synth_count=len(BUNDLED), synth_size=32), seed=0)
    for i in range(len(ds)):
        item = ds[i]
        for img in (item["low"], item["high"]):
            levels = img * 255
            assert torch.equal(levels, levels.round()) and 0 <= img.min() and img.max() <= 1
        assert item["low"].mean() < 0.6 * item["high"].mean()


def test_round_trip_without_darkening_is_the_identity():
    x = torch.arange(256.0).div(255).repeat(3, 4, 1)  # every 8-bit level
    assert torch.equal(synthesise(x, Darkening(exposure=1.0)), x)
    assert torch.allclose(from_linear(to_linear(x)), x, atol=1e-5)


@pytest.mark.parametrize("k", [0.02, 0.2])
def test_without_noise_the_mean_linear_intensity_scales_by_the_exposure(k):
    high = SynthPairs(SynthOptions(synth_count=2, synth_size=64), seed=1)[0]["high"]
    low = synthesise(high, Darkening(exposure=k))
    ratio = to_linear(low).mean() / to_linear(high).mean()
    assert ratio == pytest.approx(k, rel=0.03)  # 8-bit rounding of a dark image
    cast = synthesise(high, Darkening(exposure=k, wb=(1.2, 1.0, 1 / 1.2)), quantised=False)
    per_channel = to_linear(cast).mean((1, 2)) / to_linear(high).mean((1, 2))
    assert torch.allclose(per_channel, k * torch.tensor([1.2, 1.0, 1 / 1.2]), rtol=1e-3)


@pytest.mark.parametrize("shot", ["poisson", "gaussian"])
def test_noise_variance_on_flat_grey_is_shot_plus_read_plus_row(shot):
    signal, d = 0.05, Darkening(exposure=0.1, photons=2000.0, read=0.004, row=0.002)
    grey = torch.full((3, 256, 256), float(from_linear(torch.tensor(signal / d.exposure))))
    low = synthesise(grey, d, shot=shot, generator=torch.Generator().manual_seed(0), quantised=False)
    lin = to_linear(low)
    expected = signal / d.photons + d.read**2 + d.row**2
    n = lin.numel()
    assert lin.mean() == pytest.approx(signal, abs=4 * math.sqrt(expected / 256))  # the row term is shared
    assert lin.var() == pytest.approx(expected, rel=6 * math.sqrt(2 / n) + 0.05)
    rows = lin.mean((0, 2))  # a row's mean keeps the row noise, averages the rest away
    assert rows.var() == pytest.approx(d.row**2 + (expected - d.row**2) / (3 * 256), rel=0.3)


def test_sensor_noise_off_leaves_the_signal():
    x = torch.rand(3, 8, 8)
    assert torch.equal(sensor_noise(x, Darkening(exposure=1.0)), x)


def test_low_images_alone_and_loaders_resume_exactly():
    unpaired = SynthPairs(SynthOptions(**SMALL, paired=False))
    assert "high" not in unpaired[0] and unpaired[0]["low"].shape == (3, 16, 16)
    cfg = from_dict(DataConfig, {"type": "synth", **SMALL, "crop": 8, "batch_size": 2, "seed": 5}, "data")
    train, _ = build_loaders(cfg)
    next(train)
    state = train.state_dict()
    first = next(train)
    train2, _ = build_loaders(cfg)
    train2.load_state_dict(state)
    again = next(train2)
    assert torch.equal(first["low"], again["low"]) and torch.equal(first["high"], again["high"])


def test_options_are_checked():
    with pytest.raises(ConfigError, match="exposure_max"):
        SynthPairs(SynthOptions(exposure_min=0.5, exposure_max=0.1))
    with pytest.raises(ConfigError, match="shot"):
        DATASETS.build({"type": "synth", "shot": "laplace"})


def test_a_folder_of_images_is_a_source(tmp_path):
    for i in range(2):
        write_image(tmp_path / "sub" / f"{i}.png", torch.rand(3, 20, 24))
    ds = DATASETS.build({"type": "synth", "root": str(tmp_path), **SMALL})
    assert ds.names == ["sub/0", "sub/1"] and ds[3]["low"].shape == (3, 16, 16)


def test_evaluation_images_are_refused(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="evaluation"):
        SynthPairs(SynthOptions(root=str(shared_data / "mit5")))
    with pytest.raises(ConfigError, match="evaluation"):
        SynthPairs(SynthOptions(root=str(shared_data)))  # holds them
    copy = tmp_path / "photos"
    copy.mkdir()
    write_image(copy / "mine.png", torch.rand(3, 20, 24))
    SynthPairs(SynthOptions(root=str(copy)))  # a folder of other images is fine
    shutil.copy(shared_data / "mit5" / "high" / "0137.png", copy / "renamed.png")
    with pytest.raises(ConfigError, match="renamed.png is one of the shared evaluation images"):
        SynthPairs(SynthOptions(root=str(copy)))
    lol_eval = tmp_path / "LOL" / "eval15" / "high"
    write_image(lol_eval / "1.png", torch.rand(3, 8, 8))
    with pytest.raises(ConfigError, match="evaluation folder"):
        SynthPairs(SynthOptions(root=str(tmp_path / "LOL")))
