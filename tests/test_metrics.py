"""Metrics against scikit-image / numpy references, exact hand counts and LPIPS round trips."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from nas_llv.metrics import (
    LPIPSMetric, backbone_weights_path, count_flops, count_params, gt_mean_correct, latency, psnr,
    quantize, rmse, ssim,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _to_tensor(img: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].to(dtype) / 255


@pytest.fixture(scope="module")
def mit5_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    folder = DATA / "mit5"
    if not (folder / "low").is_dir():
        pytest.skip(f"shared data not found at {folder}")
    names = sorted(p.name for p in (folder / "low").glob("*.png"))
    return [(_read(folder / "low" / n), _read(folder / "high" / n)) for n in names]


def _astronaut_pair() -> tuple[np.ndarray, np.ndarray]:
    clean = skdata.astronaut()[::8, ::8].astype(np.float64) / 255  # 64x64x3
    rng = np.random.default_rng(0)
    degraded = np.clip(0.4 * clean + rng.normal(0, 0.05, clean.shape), 0, 1)
    return degraded, clean


def _check_against_skimage(a: np.ndarray, b: np.ndarray, dtype: torch.dtype, tol_db: float, tol_ssim: float):
    """a, b: (H, W, 3) floats in [0, 1]; compare with skimage on arrays of the same precision."""
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    a, b = a.astype(np_dtype), b.astype(np_dtype)
    ta, tb = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (a, b))
    ref_psnr = peak_signal_noise_ratio(b, a, data_range=1)
    ref_ssim = structural_similarity(a, b, data_range=1, channel_axis=-1)
    assert psnr(ta, tb).dtype == dtype and ssim(ta, tb).dtype == dtype
    assert abs(psnr(ta, tb).item() - ref_psnr) < tol_db
    assert abs(ssim(ta, tb).item() - ref_ssim) < tol_ssim
    assert abs(rmse(ta, tb).item() - np.sqrt(np.mean((a.astype(np.float64) - b) ** 2))) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_psnr_ssim_match_skimage_on_mit5(mit5_pairs, dtype):
    for low, high in mit5_pairs:
        tight = dtype == torch.float64
        _check_against_skimage(low / 255, high / 255, dtype, 1e-9 if tight else 0.01, 1e-9 if tight else 1e-3)


def test_batched_metrics_are_per_image(mit5_pairs):
    same = [p for p in mit5_pairs if p[0].shape == mit5_pairs[0][0].shape][:3]
    x = torch.cat([_to_tensor(lo, torch.float64) for lo, _ in same])
    y = torch.cat([_to_tensor(hi, torch.float64) for _, hi in same])
    assert ssim(x, y).shape == psnr(x, y).shape == rmse(x, y).shape == (len(same),)
    for i in range(len(same)):
        assert torch.allclose(ssim(x, y)[i], ssim(x[i:i + 1], y[i:i + 1])[0], atol=1e-12)
        assert torch.allclose(psnr(x, y)[i], psnr(x[i:i + 1], y[i:i + 1])[0], atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_psnr_ssim_match_skimage_on_bundled_photo(dtype):
    degraded, clean = _astronaut_pair()
    tight = dtype == torch.float64
    _check_against_skimage(degraded, clean, dtype, 1e-9 if tight else 0.01, 1e-9 if tight else 1e-3)
    # Non-square, odd-sized crop: the valid-region crop must follow skimage on both axes.
    _check_against_skimage(degraded[3:40, 5:60], clean[3:40, 5:60], dtype, 0.01, 1e-3)


def test_ssim_identical_is_one_and_differentiable():
    degraded, clean = _astronaut_pair()
    x = torch.from_numpy(degraded).permute(2, 0, 1)[None].clone().requires_grad_(True)
    y = torch.from_numpy(clean).permute(2, 0, 1)[None]
    assert torch.allclose(ssim(y, y), torch.ones(1, dtype=torch.float64), atol=1e-12)
    (1 - ssim(x, y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # A small step against the gradient must raise SSIM.
    with torch.no_grad():
        assert ssim(x - 1e-3 * x.grad / x.grad.abs().max(), y) > ssim(x, y)


def test_psnr_infinite_for_identical_and_bad_shapes_raise():
    x = torch.rand(2, 3, 16, 16)
    assert torch.isinf(psnr(x, x)).all() and (rmse(x, x) == 0).all()
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[:, :, :8])
    with pytest.raises(ValueError, match="smaller than win_size"):
        ssim(x[:, :, :5], x[:, :, :5])


def test_quantize_round_vs_truncate_on_crafted_values():
    k = torch.tensor([0.0, 10.0, 100.0, 254.0], dtype=torch.float64)
    low, high = (k + 0.3) / 255, (k + 0.7) / 255
    x = torch.cat([low, high, torch.tensor([-0.2, 1.3], dtype=torch.float64)]).view(1, 1, 1, -1)
    r, t = quantize(x, "round").flatten() * 255, quantize(x, "truncate").flatten() * 255
    assert torch.allclose(r, torch.cat([k, k + 1, torch.tensor([0.0, 255.0], dtype=torch.float64)]))
    assert torch.allclose(t, torch.cat([k, k, torch.tensor([0.0, 255.0], dtype=torch.float64)]))
    with pytest.raises(ValueError, match="allowed"):
        quantize(x, "floor")


def test_quantize_matches_numpy_uint8_round_trip():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    a = x.numpy()
    ref_round = np.clip(np.round(a * 255), 0, 255).astype(np.uint8) / np.float32(255)
    ref_trunc = np.clip(a * 255, 0, 255).astype(np.uint8) / np.float32(255)
    assert np.array_equal(quantize(x).numpy(), ref_round.astype(np.float32))
    assert np.array_equal(quantize(x, "truncate").numpy(), ref_trunc.astype(np.float32))
    # Saving through PIL and reading back gives the same levels as "round".
    img = Image.fromarray(np.clip(np.round(a[0].transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8))
    back = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    assert torch.equal(back, quantize(x[:1]))


def test_gt_mean_correct_matches_means_and_clips():
    g = torch.Generator().manual_seed(1)
    y = torch.rand(2, 3, 16, 16, generator=g) * 0.5 + 0.2
    x = torch.rand(2, 3, 16, 16, generator=g) * 0.1
    out = gt_mean_correct(x, y)
    assert torch.allclose(out.mean(dim=(1, 2, 3)), y.mean(dim=(1, 2, 3)), rtol=1e-5)
    assert torch.allclose(out / x, (y.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3))).view(2, 1, 1, 1), rtol=1e-5)
    w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = gt_mean_correct(x, y, grey="bt601")
    assert torch.allclose((luma * w).sum(1).mean(dim=(1, 2)), (y * w).sum(1).mean(dim=(1, 2)), rtol=1e-5)
    bright = gt_mean_correct(torch.full((1, 3, 8, 8), 0.1).index_fill(3, torch.tensor([0]), 0.9),
                             torch.full((1, 3, 8, 8), 0.6))
    assert bright.max() == 1.0 and bright.min() >= 0
    assert torch.equal(gt_mean_correct(torch.zeros(1, 3, 8, 8), y[:1, :, :8, :8]), torch.zeros(1, 3, 8, 8))


def test_lpips_random_backbone_zero_for_identical_positive_otherwise():
    torch.manual_seed(0)
    metric = LPIPSMetric(net="alex", random_backbone=True)
    x = torch.rand(2, 3, 64, 64)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    same, diff = metric(x, x), metric(x, y)
    assert same.shape == diff.shape == (2,)
    assert torch.equal(same, torch.zeros(2)) and (diff > 0).all()


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_min_size_is_the_least_side_its_backbone_takes(net):
    metric = LPIPSMetric(net, random_backbone=True)
    n = metric.min_size
    assert metric(torch.rand(1, 3, n, n + 5), torch.rand(1, 3, n, n + 5)).shape == (1,)
    with pytest.raises(RuntimeError):
        metric(torch.rand(1, 3, n - 1, n + 5), torch.rand(1, 3, n - 1, n + 5))


def test_lpips_without_cached_weights_is_empty_and_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert Path(torch.hub.get_dir()).is_relative_to(tmp_path)
    with caplog.at_level(logging.WARNING, logger="nas_llv.metrics"):
        metric = LPIPSMetric(net="alex")
        x = torch.rand(1, 3, 32, 32)
        assert metric(x, x) is None and metric(x, 1 - x) is None and not metric.available
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    assert warnings[0].getMessage() == f"LPIPS: AlexNet ImageNet weights not found at {expected}; LPIPS left empty"
    assert not (tmp_path / "hub" / "checkpoints").exists()  # nothing was downloaded


def test_lpips_with_cached_weights_matches_lpips_own_loading(tmp_path, monkeypatch):
    """A (random) torchvision SqueezeNet checkpoint in the hub cache is loaded as lpips loads it."""
    import lpips

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(0)
    path = backbone_weights_path("squeeze")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    metric = LPIPSMetric(net="squeeze")
    with pytest.warns(UserWarning):  # lpips' own route: torchvision's deprecated pretrained=True
        reference = lpips.LPIPS(net="squeeze", pnet_rand=False, verbose=False)
    x, y = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    assert torch.allclose(metric(x, y), reference(x, y, normalize=True).flatten(), atol=1e-6)


def test_count_flops_and_params_match_hand_count():
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.LeakyReLU(0.05), nn.Conv2d(6, 4, 5, padding=2),
                        nn.Conv2d(4, 4, 1, bias=False))
    n, h, w = 2, 16, 12
    hand = n * 2 * (3 * 6 * 9 + 6 * 4 * 25 + 4 * 4 * 1) * h * w
    assert count_flops(net, torch.rand(n, 3, h, w)) == hand
    assert count_params(net) == (3 * 6 * 9 + 6) + (6 * 4 * 25 + 4) + 4 * 4
    net[0].weight.requires_grad_(False)
    assert count_params(net, trainable_only=True) == count_params(net) - 3 * 6 * 9


def test_latency_reports_and_restores_mode():
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)).train()
    before = net[1].running_mean.clone()
    out = latency(net, torch.rand(1, 3, 16, 16), repeats=3, warmup=1)
    assert set(out) == {"median_s", "min_s", "repeats", "device_name"}
    assert out["median_s"] >= out["min_s"] > 0 and out["repeats"] == 3 and out["device_name"]
    assert net.training and torch.equal(net[1].running_mean, before)
    with pytest.raises(ValueError, match="repeats"):
        latency(net, torch.rand(1, 3, 16, 16), repeats=0)
