"""CollaBA's stem and CRB, TriCo's dynamic-grid up-sampler, IHEM and semantic backbones: smoke tests
over every table, the maths against explicit references, and the part choices through
supernet -> genotype -> derived network."""
from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
import torch.nn.functional as F

from conftest import grads_ok as _grads_ok
from nas_llv.config import ConfigError
from nas_llv.space.models import build_derived, build_supernet, resize_space
from nas_llv.space.models import semantic
from nas_llv.space.models.collaba_parts import CRB, RECONSTRUCTIONS, STEMS, UnshuffleStem
from nas_llv.space.models.semantic import LocalStandIn, build_semantic_backbone
from nas_llv.space.models.trico_parts import IHEMS, DynamicGridUp, GuidedChannelAttention, NoIHEM
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import arch_parameters, derived_state_dict, genotype_of, set_one_hot

C, S, I, HW = 8, 6, 4, 16


@pytest.mark.parametrize("name", list(STEMS))
@pytest.mark.parametrize("size", [(HW, HW), (15, 13)])
def test_stem_forward_backward(name, size):
    part = STEMS[name](C)
    x = torch.rand(2, 3, *size, requires_grad=True)
    y = part(x)
    assert y.shape == (2, C, *size)
    y.square().mean().backward()
    _grads_ok(part, x)


@pytest.mark.parametrize("name", list(RECONSTRUCTIONS))
def test_reconstruction_forward_backward(name):
    part = RECONSTRUCTIONS[name](C)
    x = torch.randn(2, C, HW, HW, requires_grad=True)
    y = part(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    _grads_ok(part, x)


@pytest.mark.parametrize("name", list(IHEMS))
def test_ihem_forward_backward(name):
    part = IHEMS[name](C, S, I)
    feat = torch.randn(2, C, HW, HW, requires_grad=True)
    sem, illum = torch.randn(2, S, HW, HW, requires_grad=True), torch.randn(2, I, HW, HW, requires_grad=True)
    y = part(feat, sem, illum)
    assert y.shape == feat.shape
    y.square().mean().backward()
    _grads_ok(part, feat, *((sem, illum) if name != "none" else ()))


def test_unshuffle_stem_is_conv_on_the_unshuffled_input():
    stem = UnshuffleStem(C)
    x = torch.rand(1, 3, 6, 10)
    conv = stem.body[1]
    ref = F.pixel_shuffle(F.leaky_relu(conv(F.pixel_unshuffle(x, 2)), 0.2), 2)
    torch.testing.assert_close(stem(x), ref)


def test_crb_follows_eq3_in_its_global_context_reading():
    crb = CRB(C).double()
    x = torch.randn(2, C, 5, 7, dtype=torch.float64)
    k, o, v = crb.key(x), crb.logit(x), crb.value(x)
    w = torch.softmax(o.flatten(2), dim=-1)                        # softmax over the 35 positions
    ctx = (k.flatten(2) * w).sum(-1)[..., None, None]                # Σ_p H_κ[:, p] softmax(H_o)_p
    torch.testing.assert_close(crb(x), crb.fuse(torch.cat([ctx + v, x], 1)))
    assert torch.allclose(w.sum(-1), torch.ones(2, 1, dtype=torch.float64))


def test_dynamic_grid_starts_as_bilinear_and_its_offsets_move_the_samples():
    up = DynamicGridUp(C, 2, 3).double()
    feat = torch.randn(1, C, 5, 7, dtype=torch.float64)
    ref = up.conv(F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False))
    torch.testing.assert_close(up(feat), ref)  # zero offsets: exactly bilinear enlargement + conv
    # a horizontal ramp (value = column index): an x offset of d input pixels adds d in the interior
    ramp = torch.arange(7, dtype=torch.float64).expand(1, 1, 5, 7).repeat(1, C, 1, 1)
    d = 0.3
    with torch.no_grad():
        up.offset.bias.zero_()
        up.offset.bias[:4].fill_(torch.atanh(torch.tensor(d / up.scope)).item())  # x-offset channels of PS(2)
    sampled = F.grid_sample(ramp, up.grid(ramp), mode="bilinear", padding_mode="border", align_corners=False)
    base = F.interpolate(ramp, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(sampled[..., 2:-3], base[..., 2:-3] + d)
    torch.testing.assert_close(sampled[:, :, :, :], sampled[:, :, :1, :].expand_as(sampled))  # y unchanged


def test_dynamic_grid_learns_its_offsets_and_has_second_derivatives():
    up = DynamicGridUp(C, 4, 3).double()
    with torch.no_grad():
        up.offset.weight.normal_(0, 0.1)
    feat = torch.randn(1, C, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.autograd.grad(up(feat).square().mean(), up.offset.weight, create_graph=True)[0]
    assert g.abs().sum() > 0
    g.square().sum().backward()  # the unrolled hypergradients differentiate through a gradient
    assert feat.grad is not None and torch.isfinite(feat.grad).all()


def test_guided_attention_is_a_residual_with_softmax_rows():
    att = GuidedChannelAttention(C, S, heads=2)
    torch.nn.init.zeros_(att.out.weight)
    torch.nn.init.zeros_(att.out.bias)
    feat, guide = torch.randn(1, C, 4, 4), torch.randn(1, S, 4, 4)
    torch.testing.assert_close(att(feat, guide), feat)  # a zero response leaves f_r
    with pytest.raises(ValueError, match="divisible by heads"):
        GuidedChannelAttention(C, S, heads=3)
    assert torch.equal(NoIHEM(C, S, I)(feat), feat)


def test_local_stand_in_is_frozen_filter_bank():
    net = LocalStandIn()
    assert not list(net.parameters()) and not net.state_dict()  # nothing learned, nothing saved
    flat = torch.full((1, 3, 9, 11), 0.4)
    y = net(flat)
    assert y.shape == (1, LocalStandIn.out_channels, 9, 11)
    torch.testing.assert_close(y[:, 3:6], torch.zeros(1, 3, 9, 11))  # a flat image has no edges
    torch.testing.assert_close(y[:, :3], flat)


def test_semantic_backbone_without_sam(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(semantic, "_WARNED", set())
    with pytest.raises(FileNotFoundError, match="sam_vit_b_01ec64.pth"):
        build_semantic_backbone("sam_vit_b")
    with caplog.at_level(logging.WARNING, logger="nas_llv.space.models.semantic"):
        kind, net = build_semantic_backbone("auto")
        build_semantic_backbone("auto")
    assert kind == "local" and isinstance(net, LocalStandIn)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "stand-in" in lines[0] and "not SAM" in lines[0]
    with pytest.raises(ValueError, match="allowed: auto, sam_vit_b, local"):
        build_semantic_backbone("clip")


def _space(name, **model):
    space = load_space(name)
    return resize_space(dataclasses.replace(space, model={**space.model, **model}), channels=8)


NEW_PARTS = [("collaba_llsr", "stem", "unshuffle"), ("collaba_llsr", "reconstruction", "crb"),
             ("trico_llsr", "upscaler", "dynamic_grid"), ("trico_llsr", "ihem", "ihem"),
             ("collaba_llsr", "stem", "conv"), ("trico_llsr", "ihem", "none")]


@pytest.mark.parametrize("model, label, name", NEW_PARTS)
def test_each_new_part_derives_to_the_one_hot_supernet(model, label, name):
    space = _space(model, semantic="local") if model == "trico_llsr" else _space(model)
    assert name in space.parts()[label]
    supernet = build_supernet(space).double()
    x = torch.rand(1, 3, HW, HW, dtype=torch.float64)
    out = supernet(x)
    out["x"].mean().backward()
    assert all(a.grad is not None and torch.isfinite(a.grad).all() for a in arch_parameters(supernet))
    geno = {**genotype_of(supernet), label: name}
    derived = build_derived(space, geno).double()
    derived.load_state_dict(derived_state_dict(supernet.net, geno))
    set_one_hot(supernet, geno)
    torch.testing.assert_close(derived(x)["x"], supernet(x)["x"], rtol=1e-9, atol=1e-9)


def test_undeclared_parts_keep_the_earlier_network():
    space = _space("collaba_llsr")
    old = dataclasses.replace(space, model={k: v for k, v in space.model.items() if k not in ("stem", "reconstruction")})
    assert set(old.parts()) == {"modulation", "fusion", "upscaler"}
    net = build_supernet(old)
    assert "net.head.0.weight" in net.state_dict() and net.net.reconstruct is None
    trico = _space("trico_llsr")
    trico = dataclasses.replace(trico, model={k: v for k, v in trico.model.items() if k not in ("ihem", "semantic")})
    assert "ihem" not in trico.parts() and build_supernet(trico).net.ihem is None


def test_trico_ihem_keeps_the_backbone_out_of_the_weights_and_checks_it_on_load():
    space = _space("trico_llsr", semantic="local", ihem="ihem")
    net = build_derived(space, {**genotype_of(build_supernet(space)), "ihem": "ihem"})
    assert isinstance(net._semantic, LocalStandIn) and int(net.semantic_backbone) == 0
    assert all(m is not net._semantic for m in net.modules())  # outside the module tree
    assert len(net.ihem) == len(net.blocks)
    net(torch.rand(1, 3, HW, HW))
    state = net.state_dict()
    state["semantic_backbone"] = torch.tensor(1)  # as if trained with SAM
    with pytest.raises(RuntimeError, match="trained with the sam_vit_b semantic backbone, but local"):
        net.load_state_dict(state)


@pytest.mark.parametrize("options, message", [
    ({"ihem": ["none", "sam"]}, r"unknown ihem 'sam'; allowed: none, ihem"),
    ({"semantic": "clip"}, r"unknown semantic 'clip'; allowed: auto, sam_vit_b, local"),
])
def test_bad_trico_options(options, message):
    with pytest.raises(ConfigError, match=message):
        build_supernet(_space("trico_llsr", **options))


def test_bad_collaba_stem():
    with pytest.raises(ConfigError, match=r"unknown stem 'patch'; allowed: conv, unshuffle"):
        build_supernet(_space("collaba_llsr", stem=["conv", "patch"]))


def test_sam_is_used_when_package_and_weights_are_local(monkeypatch, tmp_path):
    """The SAM path with a fake segment_anything (the real one is not installed here): the
    encoder is built from the hub-cache file, frozen, fed SAM-normalised 1024² input."""
    import sys
    import types

    class FakeEncoder(torch.nn.Module):
        img_size = 64

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 256, 16, stride=16)
            self.seen = None

        def forward(self, x):
            self.seen = x
            return self.proj(x)

    built = {}

    def vit_b(checkpoint):
        built["path"] = checkpoint
        return types.SimpleNamespace(image_encoder=FakeEncoder())

    monkeypatch.setitem(sys.modules, "segment_anything", types.SimpleNamespace(sam_model_registry={"vit_b": vit_b}))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / semantic.SAM_CHECKPOINT).write_bytes(b"")
    kind, net = build_semantic_backbone("auto")
    assert kind == "sam_vit_b" and built["path"].endswith("sam_vit_b_01ec64.pth")
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    y = net(torch.rand(1, 3, 10, 14))
    assert y.shape == (1, 256, 10, 14) and net.encoder.seen.shape == (1, 3, 64, 64)
