from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from conftest import grads_ok as _grads_ok
from nas_llv.space import nni_bridge
from nas_llv.config import ConfigError
from nas_llv.space.models import build_derived, build_supernet, resize_space
from nas_llv.space.models.parts import (
    CFT, DCFT, FUSIONS, MODULATIONS, SKFF, UPSCALERS, IlluminationAttention, IlluminationRegulator,
    PixelShuffleUp, UNet,
)
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import ArchParams, MixedPart, arch_parameters, derived_state_dict, genotype_of, set_one_hot

C, P, HW = 8, 5, 16
MODELS = ["trico_llsr", "collaba_llsr"]


@pytest.mark.parametrize("name", list(MODULATIONS))
def test_modulation_forward_backward(name):
    part = MODULATIONS[name](C, P)
    feat = torch.randn(2, C, HW, 12, requires_grad=True)
    prior = torch.randn(2, P, HW, 12, requires_grad=True)
    y = part(feat, prior)
    assert y.shape == feat.shape
    y.square().mean().backward()
    _grads_ok(part, feat, prior)


@pytest.mark.parametrize("name", list(FUSIONS))
@pytest.mark.parametrize("branches", [2, 3])
def test_fusion_forward_backward(name, branches):
    part = FUSIONS[name](C, branches)
    feats = [torch.randn(2, C, HW, HW, requires_grad=True) for _ in range(branches)]
    y = part(*feats)
    assert y.shape == feats[0].shape
    y.square().mean().backward()
    _grads_ok(part, *feats)


@pytest.mark.parametrize("name", list(UPSCALERS))
@pytest.mark.parametrize("scale", [2, 4])
def test_upscaler_forward_backward(name, scale):
    part = UPSCALERS[name](C, scale, 3)
    feat = torch.randn(1, C, HW, 12, requires_grad=True)
    y = part(feat)
    assert y.shape == (1, 3, scale * HW, scale * 12)
    y.square().mean().backward()
    _grads_ok(part, feat)


@pytest.mark.parametrize("size", [(16, 16), (15, 13)])
def test_unet_keeps_any_size(size):
    net = UNet(3, 2, width=4, depth=2)
    x = torch.rand(1, 3, *size, requires_grad=True)
    y = net(x)
    assert y.shape == (1, 2, *size)
    y.mean().backward()
    _grads_ok(net, x)


@pytest.mark.parametrize("alpha_channels", [1, 3])
def test_illumination_regulator_follows_eq1(alpha_channels):
    reg = IlluminationRegulator(width=4, depth=1, alpha_channels=alpha_channels).double()
    x = 0.2 * torch.rand(2, 3, HW, HW, dtype=torch.float64)
    alpha, u, v = reg(x)
    assert alpha.shape == (2, alpha_channels, HW, HW)
    assert ((alpha > 0) & (alpha < 1)).all()
    torch.testing.assert_close(u, alpha * x + (1 - alpha) * 1.0)  # β = 1 - α, u = α·x + β·1
    assert (u >= x).all() and (u <= 1).all()
    torch.testing.assert_close(v, x / u)  # inside [0, 1] already, so the clamp is inactive
    (v.mean() + u.mean()).backward()
    _grads_ok(reg)


def test_illumination_attention_inverts_the_max_channel_prior():
    att_net = IlluminationAttention(width=4, depth=1).double()
    y = torch.rand(1, 3, HW, HW, dtype=torch.float64) * 0.8 + 0.1
    x = 0.3 * y
    prior = (x.amax(1, keepdim=True) - y.amax(1, keepdim=True)).abs() / y.amax(1, keepdim=True)  # Eq. (4)
    v = att_net.brighten(x, prior)
    torch.testing.assert_close(v.amax(1), y.amax(1))  # a perfect attention recovers max_c y
    att = att_net(x)
    assert att.shape == (1, 1, HW, HW) and ((att > 0) & (att < 1)).all()


def test_cft_dcft_maths():
    feat, prior = torch.randn(1, C, 6, 6), torch.randn(1, P, 6, 6)
    cft = CFT(C, P)
    gamma, beta = cft.affine(prior).chunk(2, 1)
    torch.testing.assert_close(cft(feat, prior), cft.conv(feat) * (1 + gamma) + beta)
    dcft = DCFT(C, P)
    out = dcft(feat, prior)
    torch.testing.assert_close(out[:, :C // 2], feat[:, :C // 2])  # kept half passes unchanged
    torch.testing.assert_close(out[:, C // 2:], dcft.cft(feat[:, C // 2:], prior))
    assert DCFT(7, P)(torch.randn(1, 7, 4, 4), torch.randn(1, P, 4, 4)).shape == (1, 7, 4, 4)


def test_skff_selects_a_convex_combination():
    skff = SKFF(C, 3)
    same = torch.randn(2, C, 6, 6)
    torch.testing.assert_close(skff(same, same, same), same)  # softmax over branches sums to one
    for s in skff.select:
        torch.nn.init.zeros_(s.weight)
    a, b, c = (torch.randn(2, C, 6, 6) for _ in range(3))
    torch.testing.assert_close(skff(a, b, c), (a + b + c) / 3)  # equal logits: the mean
    with pytest.raises(ValueError, match="3 branches"):
        skff(a, b)


def test_pixelshuffle_matches_reference():
    up = PixelShuffleUp(C, 2, 3)
    x = torch.randn(1, C, 5, 7)
    torch.testing.assert_close(up(x), F.pixel_shuffle(up.body[0](x), 2))


def test_mixed_part_is_the_softmax_weighted_sum():
    def make():
        arch = ArchParams()
        part = MixedPart("up", {n: UPSCALERS[n](C, 2, 3) for n in UPSCALERS}, arch)
        part.arch = arch
        return part

    space = nni_bridge.Space(make)
    part, alpha = space.net, space.net.arch["up"]
    with torch.no_grad():
        alpha.copy_(torch.randn(len(UPSCALERS)))
    x = torch.randn(1, C, 6, 6)
    outs = {n: m(x) for n, m in nni_bridge.candidates(part.choice)}
    w = alpha.softmax(0)
    torch.testing.assert_close(part(x), sum(wi * outs[n] for wi, n in zip(w, UPSCALERS)))
    for n in UPSCALERS:  # one-hot α reproduces the chosen part exactly
        set_one_hot(space, {"up": n})
        assert torch.equal(part(x), outs[n])


def _space(name, **model):
    space = load_space(name)
    return dataclasses.replace(space, model={**space.model, **model})


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("scale", [2, 4])
def test_supernet_and_derived_sizes(model, scale):
    space = resize_space(load_space(model), channels=8)
    supernet = build_supernet(space, scale=scale)
    x = torch.rand(1, 3, HW, HW)
    out = supernet(x)
    assert out["x"].shape == (1, 3, scale * HW, scale * HW)
    assert out["v"].shape == x.shape and out["illum"].shape[-2:] == x.shape[-2:]
    assert out["illum"].shape[1] == (3 if model == "trico_llsr" else 1)
    out["x"].mean().backward()
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in arch_parameters(supernet))
    derived = build_derived(space, genotype_of(supernet), scale=scale)
    assert derived(x)["x"].shape == (1, 3, scale * HW, scale * HW)
    assert not arch_parameters(derived)


@pytest.mark.parametrize("model", MODELS)
def test_every_upscaler_derives_to_the_one_hot_supernet(model):
    space = resize_space(load_space(model), channels=8)
    supernet = build_supernet(space).double()
    x = torch.rand(1, 3, HW, HW, dtype=torch.float64)
    base = genotype_of(supernet)
    for name in space.parts()["upscaler"]:
        geno = {**base, "upscaler": name}
        derived = build_derived(space, geno).double()
        derived.load_state_dict(derived_state_dict(supernet.net, geno))
        set_one_hot(supernet, geno)
        torch.testing.assert_close(derived(x)["x"], supernet(x)["x"], rtol=1e-9, atol=1e-9)


def test_collaba_labels_and_trico_alpha():
    space = load_space("collaba_llsr")
    parts = space.parts()
    assert parts == {"modulation": ("cft", "dcft", "concat"), "fusion": ("skff", "sum"),
                     "upscaler": ("pixelshuffle", "bilinear_conv", "bicubic_conv", "msmu"),
                     "stem": ("conv", "unshuffle"), "reconstruction": ("none", "crb")}
    assert space.parts("net.") == {f"net.{k}": v for k, v in parts.items()}
    supernet = build_supernet(resize_space(space, channels=8))
    assert set(parts) <= set(nni_bridge.labels(supernet))
    assert supernet.net.modulate[0]._arch is supernet.net.modulate[1]._arch  # branches share one choice
    out = build_supernet(resize_space(load_space("trico_llsr"), channels=8))(torch.rand(1, 3, HW, HW))
    assert out["alpha"].shape == (1, 3, HW, HW)


def test_single_candidate_is_a_fixed_but_valid_choice():
    space = resize_space(_space("collaba_llsr", upscaler="msmu", fusion=["sum"]), channels=8)
    assert space.labels()["upscaler"] == ("msmu",) and space.labels()["fusion"] == ("sum",)
    supernet = build_supernet(space)
    geno = genotype_of(supernet)
    assert geno["upscaler"] == "msmu" and geno["fusion"] == "sum"
    assert build_derived(space, geno)(torch.rand(1, 3, HW, HW))["x"].shape == (1, 3, 2 * HW, 2 * HW)


@pytest.mark.parametrize("options, message", [
    ({"upscaler": ["pixelshuffle", "nearest"]}, r"unknown upscaler 'nearest'; allowed: pixelshuffle, bilinear_conv"),
    ({"modulation": ["sft"]}, r"unknown modulation 'sft'; allowed: cft, dcft, concat"),
    ({"fusion": []}, r"'fusion' must be a part name or a non-empty list"),
    ({"fusion": ["sum", "sum"]}, r"repeats a candidate"),
    ({"scale": 3}, r"scale must be one of 1, 2, 4"),
    ({"branches": 5}, r"branches must be 1, 2 or 3"),
    ({"widht": 16}, r"unknown option\(s\) widht; allowed: scale"),
])
def test_bad_options_name_what_is_allowed(options, message):
    with pytest.raises(ConfigError, match=message):
        build_supernet(_space("collaba_llsr", **options))


def test_derived_rejects_a_part_outside_the_candidates():
    space = resize_space(_space("trico_llsr", upscaler=["pixelshuffle", "msmu"]), channels=8)
    geno = {**genotype_of(build_supernet(space)), "upscaler": "bicubic_conv"}
    with pytest.raises(ConfigError, match="candidates: pixelshuffle, msmu"):
        build_derived(space, geno)
