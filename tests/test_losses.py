from __future__ import annotations

import logging
import math

import pytest
import torch

import nas_llv.losses  # noqa: F401  (registers the losses)
from nas_llv.config import ConfigError
from nas_llv.losses import (CompositeLoss, build_composite, illumination_prior, relative_total_variation,
                            ruas_code_smoothness, total_variation)
from nas_llv.losses.perceptual import VGG19_CFG, VGG19_LAYERS, vgg19_weights_path
from nas_llv.registry import LOSSES

TEST_OPTIONS = {"perceptual": {"random_init": True, "layers": ["relu2_2", "conv5_4"]},
                "noise_level": {"key": "x"},  # the smoke outputs hold no noise map
                "edge": {"key": "x"}}  # nor edge logits


def _outputs(z: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every output key, all differentiable functions of one leaf z: (2, 3, 16, 16)."""
    t = torch.sigmoid(z).clamp(1e-4, 1)
    u = (torch.rand_like(z) * 0.3 / t).clamp(0, 1)
    return {"t": t, "u": u, "x": torch.sigmoid(z + 0.5), "illum": torch.sigmoid(z).mean(1, keepdim=True),
            # the illumination network as a function of its input (sci_calibration runs it again)
            "illuminate": lambda v: (0.5 * torch.sigmoid(z) + 0.5 * v.clamp(0, 1)).clamp(1e-4, 1)}


def _batch() -> dict[str, torch.Tensor]:
    return {"low": torch.rand(2, 3, 16, 16) * 0.3, "high": torch.rand(2, 3, 16, 16)}


@pytest.mark.parametrize("name", LOSSES.names())
def test_every_loss_builds_runs_and_backpropagates(name):
    loss = LOSSES.build({"type": name, **TEST_OPTIONS.get(name, {})})
    assert loss.available
    z = torch.randn(2, 3, 16, 16, requires_grad=True)
    value = loss(_outputs(z), _batch())
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


# ---- RUAS scene loss -------------------------------------------------------------------------

def _naive_rtv(img: torch.Tensor, sigma: float, eps: float) -> float:
    """Xu et al. 2012 RTV by explicit loops over pixels p and window pixels q; img: (H, W)."""
    h, w = img.shape
    size = max(int(round(5 * sigma)) | 1, 3)
    r = size // 2
    z1 = sum(math.exp(-d * d / (2 * sigma**2)) for d in range(-r, r + 1))
    def dx(i, j):
        return float(img[i, j + 1] - img[i, j]) if j < w - 1 else 0.0
    def dy(i, j):
        return float(img[i + 1, j] - img[i, j]) if i < h - 1 else 0.0
    total = 0.0
    for i in range(h):
        for j in range(w):
            dxs = dxa = dys = dya = 0.0
            for k in range(max(0, i - r), min(h, i + r + 1)):
                for m in range(max(0, j - r), min(w, j + r + 1)):
                    g = math.exp(-((k - i) ** 2 + (m - j) ** 2) / (2 * sigma**2)) / z1**2
                    dxs += g * dx(k, m)
                    dxa += g * abs(dx(k, m))
                    dys += g * dy(k, m)
                    dya += g * abs(dy(k, m))
            total += dxa / (abs(dxs) + eps) + dya / (abs(dys) + eps)
    return total / (h * w)


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_rtv_matches_naive_loops(sigma):
    img = torch.rand(2, 2, 6, 6, dtype=torch.float64)
    expected = sum(_naive_rtv(img[n, c], sigma, 1e-3) for n in range(2) for c in range(2)) / 4
    assert relative_total_variation(img, sigma, 1e-3).item() == pytest.approx(expected, rel=1e-10)


def test_rtv_smaller_on_a_ramp_than_on_noise():
    ramp = torch.linspace(0.2, 0.8, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    noise = 0.2 + 0.6 * torch.rand(1, 3, 16, 16)
    assert relative_total_variation(ramp) < 0.5 * relative_total_variation(noise)


def test_scene_loss_data_term_vanishes_when_t_equals_y():
    y = 0.1 + 0.8 * torch.rand(2, 3, 16, 16)
    assert LOSSES.build({"type": "ruas_scene", "eta": 0.0})({"t": y}, {"low": y}).item() == 0.0
    loss = LOSSES.build({"type": "ruas_scene", "eta": 0.5})({"t": y}, {"low": y})
    assert loss.item() == pytest.approx(0.5 * relative_total_variation(y).item(), rel=1e-6)
    shifted = LOSSES.build({"type": "ruas_scene", "eta": 0.0})({"t": y + 0.1}, {"low": y})
    assert shifted.item() == pytest.approx(0.01, rel=1e-4)


def _authors_smooth(inp: torch.Tensor, out: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """The public RUAS SmoothLoss.forward, transcribed term by term (24 slice pairs)."""
    sc = -1.0 / 2 * sigma * sigma
    pairs = [  # (rows_a, cols_a, rows_b, cols_b) as in the authors' w1..w24
        ((1, None), (0, None), (0, -1), (0, None)), ((0, -1), (0, None), (1, None), (0, None)),
        ((0, None), (1, None), (0, None), (0, -1)), ((0, None), (0, -1), (0, None), (1, None)),
        ((0, -1), (0, -1), (1, None), (1, None)), ((1, None), (1, None), (0, -1), (0, -1)),
        ((1, None), (0, -1), (0, -1), (1, None)), ((0, -1), (1, None), (1, None), (0, -1)),
        ((2, None), (0, None), (0, -2), (0, None)), ((0, -2), (0, None), (2, None), (0, None)),
        ((0, None), (2, None), (0, None), (0, -2)), ((0, None), (0, -2), (0, None), (2, None)),
        ((0, -2), (0, -1), (2, None), (1, None)), ((2, None), (1, None), (0, -2), (0, -1)),
        ((2, None), (0, -1), (0, -2), (1, None)), ((0, -2), (1, None), (2, None), (0, -1)),
        ((0, -1), (0, -2), (1, None), (2, None)), ((1, None), (2, None), (0, -1), (0, -2)),
        ((1, None), (0, -2), (0, -1), (2, None)), ((0, -1), (2, None), (1, None), (0, -2)),
        ((0, -2), (0, -2), (2, None), (2, None)), ((2, None), (2, None), (0, -2), (0, -2)),
        ((2, None), (0, -2), (0, -2), (2, None)), ((0, -2), (2, None), (2, None), (0, -2)),
    ]
    total = 0
    for ra, ca, rb, cb in pairs:
        def cut(x, r, c):
            return x[:, :, slice(*r), slice(*c)]
        w = torch.exp(torch.sum((cut(inp, ra, ca) - cut(inp, rb, cb)) ** 2, dim=1, keepdim=True) * sc)
        total = total + torch.mean(w * torch.mean(torch.abs(cut(out, ra, ca) - cut(out, rb, cb))))
    return total


def _authors_ycbcr(x: torch.Tensor) -> torch.Tensor:
    mat = torch.tensor([[0.257, -0.148, 0.439], [0.564, -0.291, -0.368], [0.098, 0.439, -0.071]], dtype=x.dtype)
    bias = torch.tensor([16.0 / 255.0, 128.0 / 255.0, 128.0 / 255.0], dtype=x.dtype)
    return (x.contiguous().view(-1, 3).mm(mat) + bias).view(1, 3, x.shape[2], x.shape[3])


def test_code_smoothness_reproduces_the_public_code():
    y, t = torch.rand(1, 3, 9, 8, dtype=torch.float64), torch.rand(1, 3, 9, 8, dtype=torch.float64)
    assert ruas_code_smoothness(y, t).item() == pytest.approx(_authors_smooth(y, t).item(), rel=1e-12)
    ycc = ruas_code_smoothness(y, t, guide="ycbcr").item()
    assert ycc == pytest.approx(_authors_smooth(_authors_ycbcr(y), t).item(), rel=1e-12)
    code = LOSSES.build({"type": "ruas_scene", "smooth": "code"})({"t": t}, {"low": y})
    expected = 0.5 * torch.mean((t - y) ** 2) + _authors_smooth(y, t)
    assert code.item() == pytest.approx(expected.item(), rel=1e-12)


def test_ruas_denoise_matches_the_public_code():
    x, u = torch.rand(2, 3, 8, 7, dtype=torch.float64), torch.rand(2, 3, 8, 7, dtype=torch.float64)
    h_tv = ((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).sum() / (3 * 7 * 7)
    w_tv = ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).sum() / (3 * 8 * 6)
    expected = 1e-7 * torch.mean((x - u) ** 2) + 2 * (h_tv + w_tv) / 2
    assert LOSSES.build("ruas_denoise")({"x": x, "u": u}, {}).item() == pytest.approx(expected.item(), rel=1e-12)


# ---- image losses ------------------------------------------------------------------------------

def test_tv_exact_on_a_crafted_image():
    img = torch.tensor([[0.0, 1, 3], [0, 1, 3], [2, 2, 2]]).view(1, 1, 3, 3)
    # |d_h| = 1, 2, 1, 2, 0, 0 (mean 1); |d_v| = 0, 2, 0, 1, 0, 1 (mean 2/3)
    assert total_variation(img).item() == pytest.approx(1 + 2 / 3)
    assert total_variation(img, p=2).item() == pytest.approx(10 / 6 + 1)
    assert LOSSES.build("tv")({"x": img}, {}).item() == pytest.approx(5 / 3)


@pytest.mark.parametrize("mean_over", ["space", "channels"])
def test_luminance_by_hand_on_constant_channels(mean_over):
    v = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(2, 3, 5, 5)
    target = [0.485 + 0.229, 0.456 + 0.224, 0.406 + 0.225]
    vbar = [0.2, 0.5, 0.8] if mean_over == "space" else [0.5, 0.5, 0.5]
    expected = sum(math.exp(abs(a - b)) - 1 for a, b in zip(vbar, target)) / 3
    loss = LOSSES.build({"type": "luminance", "mean_over": mean_over})({"u": v}, {})
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_illumination_prior_by_hand_and_loss_zero_at_the_prior():
    low = torch.tensor([0.1, 0.2, 0.05]).view(1, 3, 1, 1).expand(2, 3, 8, 8)
    high = torch.tensor([0.8, 0.4, 0.6]).view(1, 3, 1, 1).expand(2, 3, 16, 16)  # x2 ground truth
    prior = illumination_prior(low, high)
    assert prior.shape == (2, 1, 8, 8)
    assert torch.allclose(prior, torch.full_like(prior, 0.75))  # |0.2 - 0.8| / 0.8
    loss = LOSSES.build("illum_prior")
    assert loss({"illum": prior}, {"low": low, "high": high}).item() == 0.0
    assert loss({"illum": prior + 0.1}, {"low": low, "high": high}).item() == pytest.approx(0.01)
    l2 = LOSSES.build({"type": "illum_prior", "norm": "l2"})({"illum": prior + 0.1}, {"low": low, "high": high})
    assert l2.item() == pytest.approx(0.8)  # sqrt(64 * 0.01)


def test_paired_losses_exact_and_ssim_zero_on_identical_images():
    x, high = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert LOSSES.build("l1")({"x": x}, {"high": high}).item() == pytest.approx((x - high).abs().mean().item())
    assert LOSSES.build("mse")({"x": x}, {"high": high}).item() == pytest.approx(((x - high) ** 2).mean().item())
    assert LOSSES.build("ssim")({"x": x}, {"high": x}).item() == pytest.approx(0.0, abs=1e-6)
    assert LOSSES.build({"type": "l1", "key": "u"})({"u": high}, {"high": high}).item() == 0.0


def test_missing_keys_and_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="loss 'l1' needs ground truth 'high'; the dataset is unpaired"):
        LOSSES.build("l1")({"x": torch.rand(1, 3, 8, 8)}, {"low": torch.rand(1, 3, 8, 8)})
    with pytest.raises(ConfigError, match="loss 'ruas_scene' needs 't'"):
        LOSSES.build("ruas_scene")({"u": torch.rand(1, 3, 8, 8)}, {"low": torch.rand(1, 3, 8, 8)})
    with pytest.raises(ConfigError, match="same shape"):
        LOSSES.build("l1")({"x": torch.rand(1, 3, 8, 8)}, {"high": torch.rand(1, 3, 16, 16)})
    with pytest.raises(ConfigError, match="allowed: rtv, code, code_ycbcr"):
        LOSSES.build({"type": "ruas_scene", "smooth": "paper"})
    with pytest.raises(ConfigError, match="eta"):
        LOSSES.build({"type": "ruas_scene", "eta": -1.0})


# ---- perceptual --------------------------------------------------------------------------------

def test_vgg19_layer_table():
    assert (VGG19_LAYERS["conv1_1"], VGG19_LAYERS["relu2_2"], VGG19_LAYERS["pool3"]) == (0, 8, 18)
    assert (VGG19_LAYERS["conv5_4"], VGG19_LAYERS["relu5_4"], VGG19_LAYERS["pool5"]) == (34, 35, 36)
    from torchvision.models.vgg import cfgs

    assert list(VGG19_CFG) == cfgs["E"]  # the written-out layout is torchvision's VGG19


def test_perceptual_missing_weights_fail(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ConfigError) as err:
        LOSSES.build("perceptual")
    msg = str(err.value)
    assert msg.startswith("perceptual loss: VGG19 ImageNet weights not found at ") and "\n" not in msg
    assert str(tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg


def test_perceptual_missing_weights_drop(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with caplog.at_level(logging.INFO):
        loss = LOSSES.build({"type": "perceptual", "on_missing": "drop"})
    lines = [r for r in caplog.records if r.name == "nas_llv.losses.perceptual"]
    assert loss.available is False and len(lines) == 1 and "not found at" in lines[0].getMessage()
    with pytest.raises(ConfigError, match="unavailable"):
        loss({"x": torch.rand(1, 3, 16, 16)}, {"high": torch.rand(1, 3, 16, 16)})
    caplog.clear()
    with caplog.at_level(logging.INFO):
        comp = CompositeLoss({"l1": {"type": "l1"}, "per": {"type": "perceptual", "on_missing": "drop"}})
    assert list(comp.terms) == ["l1"]
    assert len([r for r in caplog.records if r.name == "nas_llv.losses.perceptual"]) == 1
    assert len([r for r in caplog.records if r.name == "nas_llv.losses.weighting"]) == 1


def test_perceptual_loads_a_local_checkpoint(monkeypatch, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    feats = make_layers(cfgs["E"])[:9]  # up to relu2_2
    path = vgg19_weights_path()
    path.parent.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in feats.state_dict().items()}, path)
    loss = LOSSES.build({"type": "perceptual", "layers": ["relu2_2"]})
    assert torch.equal(loss._vgg[7].weight, feats[7].weight)
    assert list(loss.parameters()) == [] and loss.state_dict() == {}
    x, high = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert loss({"x": high}, {"high": high}).item() == 0.0
    assert loss({"x": x}, {"high": high}).item() > 0


# ---- composite (fixed coefficients) -------------------------------------------------------------

def test_composite_fixed_coefficients_total_and_terms():
    cfg = {"terms": {"scene": {"type": "ruas_scene"}, "l1": {"type": "l1"}}, "coefficients": {"scene": 2.0}}
    comp = build_composite(cfg)
    out, batch = {"t": torch.rand(1, 3, 16, 16) + 0.1, "x": torch.rand(1, 3, 16, 16)}, _batch()
    batch = {k: v[:1] for k, v in batch.items()}
    total, parts = comp(out, batch)
    assert set(parts) == {"scene", "l1"} and comp.values() == {"scene": 2.0, "l1": 1.0}
    assert total.item() == pytest.approx(2 * parts["scene"].item() + parts["l1"].item())
    assert comp.hyper_parameters() == []
    with pytest.raises(ConfigError, match="unknown term 'ssim'"):
        build_composite({"terms": cfg["terms"], "coefficients": {"ssim": 1.0}})
    with pytest.raises(ConfigError, match="loss term 'a'.*allowed"):
        build_composite({"terms": {"a": {"type": "nope"}}})
    with pytest.raises(ConfigError, match="unknown key 'weight'"):
        build_composite({"terms": cfg["terms"], "weight": {}})


def test_composite_reads_the_old_key_weights_as_coefficients(caplog):
    """Recipes written before "weights" came to mean ω only keep loading, with one info line."""
    terms = {"scene": {"type": "ruas_scene"}, "l1": {"type": "l1"}}
    with caplog.at_level(logging.INFO, logger="nas_llv.losses.weighting"):
        comp = build_composite({"terms": terms, "weights": {"scene": 2.0}})
    assert comp.values() == {"scene": 2.0, "l1": 1.0}
    assert [r.getMessage() for r in caplog.records] == ["loss: 'weights' is now called 'coefficients'; reading it as such"]
    with pytest.raises(ConfigError, match="'coefficients' only"):
        build_composite({"terms": terms, "weights": {"scene": 2.0}, "coefficients": {"scene": 2.0}})
