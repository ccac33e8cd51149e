"""The embedded demo: the documented darkening model, checked against its own statistics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas_llv.config import ConfigError
from nas_llv.data import SOURCE_NAMES, darken, demo_pairs, demo_sr_pairs, linear_to_srgb, srgb_to_linear
from nas_llv.data.demo import darken_linear, source_image


def _srgb_to_linear_ref(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def test_srgb_transfer_matches_reference_and_inverts() -> None:
    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    lin = srgb_to_linear(x)
    np.testing.assert_allclose(lin.numpy(), _srgb_to_linear_ref(x.numpy()), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(linear_to_srgb(lin).numpy(), x.numpy(), atol=1e-12)
    assert torch.all(lin[1:] > lin[:-1])  # monotone, continuous across the 0.04045 knee


def test_noise_statistics_follow_the_model() -> None:
    """On a flat patch, k*L + sqrt(a*k*L + b^2)*N(0,1): mean k*L, variance a*k*L + b^2."""
    lin = torch.full((3, 64, 64), 0.5, dtype=torch.float64)
    k, a, b = 0.2, 0.01, 0.005
    out = darken_linear(lin, k, a, b, torch.Generator().manual_seed(0))
    assert abs(float(out.mean()) - k * 0.5) < 1e-3
    assert float(out.var()) == pytest.approx(a * k * 0.5 + b**2, rel=0.05)
    clean = darken(linear_to_srgb(lin), k)
    assert torch.allclose(srgb_to_linear(clean), torch.full_like(lin, k * 0.5))


def test_demo_is_darker_noisy_and_deterministic() -> None:
    ds = demo_pairs(count=8, size=64, seed=3)
    assert len(ds) == 8 and [n.split("_")[0] for n in ds.names] == list(SOURCE_NAMES)
    again, other = demo_pairs(count=8, size=64, seed=3), demo_pairs(count=8, size=64, seed=4)
    for i in range(len(ds)):
        item = ds[i]
        assert item["low"].shape == item["high"].shape == (3, 64, 64)
        assert 0 <= float(item["low"].min()) and float(item["low"].max()) <= 1
        assert float(item["low"].mean()) < 0.75 * float(item["high"].mean())
        assert torch.equal(item["low"], again[i]["low"]) and torch.equal(item["high"], again[i]["high"])
        assert not torch.equal(item["low"], other[i]["low"])


def _normalised_residuals(low: torch.Tensor, clean_lin: torch.Tensor, p: dict[str, float]) -> torch.Tensor:
    """(observed - expected) / model std over pixels far from the clipping bounds."""
    signal = p["exposure"] * clean_lin.double()
    std = (p["shot"] * signal + p["read"] ** 2).sqrt()
    keep = (signal > 4 * std) & (signal + 4 * std < 1)
    return ((srgb_to_linear(low.double()) - signal) / std)[keep]


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_demo_noise_is_the_documented_model(scale: int) -> None:
    ds = demo_sr_pairs(scale=scale, count=8, size=48 * scale, seed=0)
    z = []
    for i in range(len(ds)):
        clean = srgb_to_linear(ds[i]["high"].double())
        if scale > 1:
            clean = F.avg_pool2d(clean[None], scale)[0]  # box filter in linear light
        z.append(_normalised_residuals(ds[i]["low"], clean, ds.params[i]))
    z_all = torch.cat(z)
    assert z_all.numel() > 2000
    assert abs(float(z_all.mean())) < 0.1 and float(z_all.var()) == pytest.approx(1.0, rel=0.1)


@pytest.mark.parametrize("scale", [2, 4])
def test_demo_sr_shapes(scale: int) -> None:
    ds = demo_sr_pairs(scale=scale, count=3, size=64, seed=1)
    assert ds.scale == scale and len(ds) == 3
    for i in range(3):
        assert ds[i]["low"].shape == (3, 64 // scale, 64 // scale) and ds[i]["high"].shape == (3, 64, 64)
    same_crops = demo_pairs(count=3, size=64, seed=1)
    assert torch.equal(same_crops[0]["high"], ds[0]["high"])  # HR is the normal-light original crop


def test_demo_sources_are_bundled_rgb_photographs() -> None:
    for name in SOURCE_NAMES:
        img = source_image(name)
        assert img.dtype == torch.uint8 and img.shape[0] == 3 and min(img.shape[1:]) >= 256


def test_demo_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="multiple of scale=4"):
        demo_sr_pairs(scale=4, size=66)
    with pytest.raises(ConfigError, match="allowed: 1, 2, 4"):
        demo_sr_pairs(scale=3)
    with pytest.raises(ConfigError, match="count=0"):
        demo_pairs(count=0)
