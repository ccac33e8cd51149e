"""``bandconv.conv2d``: torch's convolution with the weight gradient of a one-image batch computed
over two row bands. The forward and the input gradient are torch's bit for bit, the weight and
bias gradients equal torch's up to rounding; it steps aside where it does not apply."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas_llv.space import bandconv


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def pair(cin: int, cout: int, k: int, h: int, w: int, dtype=torch.float64, channels_last: bool = True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cin, h, w, generator=g, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(cout, cin, k, k, generator=g, dtype=dtype)
    bias = torch.randn(cout, generator=g, dtype=dtype)
    return x, weight, bias


@pytest.mark.parametrize("cin,cout,k,dilation,h,w,channels_last", [
    (3, 6, 3, 1, 40, 37, True),   # even height
    (6, 12, 3, 2, 41, 33, True),  # odd height: the bottom band gets a zero row
    (6, 6, 1, 1, 64, 50, False),  # 1x1, no halo, NCHW input
    (3, 3, 5, 1, 33, 40, True),   # a 5x5 kernel: two halo rows
    (3, 3, 3, 2, 32, 20, True),   # the smallest height it takes: MIN_BAND_ROWS rows a band
])
def test_gradients_match_torch(cin, cout, k, dilation, h, w, channels_last):
    x, weight, bias = pair(cin, cout, k, h, w, channels_last=channels_last)
    pad = dilation * (k // 2)
    ref = [t.clone().requires_grad_() for t in (x, weight, bias)]
    new = [t.clone().requires_grad_() for t in (x, weight, bias)]
    ya = F.conv2d(*ref, padding=pad, dilation=dilation)
    yb = bandconv.conv2d(*new, pad, dilation)
    assert type(yb.grad_fn).__name__ == "_BandConvBackward"
    assert torch.equal(ya, yb)
    g = torch.randn_like(ya)
    ga = torch.autograd.grad(ya, ref, g)
    gb = torch.autograd.grad(yb, new, g)
    assert torch.equal(ga[0], gb[0])  # the input gradient is torch's own call
    for a, b in zip(ga[1:], gb[1:]):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-10)


def test_float32_weight_gradient_within_rounding():
    x, weight, bias = pair(6, 12, 3, 96, 80, dtype=torch.float32)
    ref = [t.clone().requires_grad_() for t in (x, weight, bias)]
    new = [t.clone().requires_grad_() for t in (x, weight, bias)]
    g = torch.randn(1, 12, 96, 80)
    ga = torch.autograd.grad(F.conv2d(*ref, padding=1), ref, g)
    gb = torch.autograd.grad(bandconv.conv2d(*new, 1, 1), new, g)
    for a, b in zip(ga[1:], gb[1:]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5 * a.abs().max().item())


def test_skips_the_weight_gradient_a_pass_does_not_need(monkeypatch):
    """As torch's own backward does: a kernel built from α (not a leaf), differentiated to x only."""
    calls = []
    monkeypatch.setattr(bandconv, "band_weight_grad", lambda *a: calls.append(1) or torch.zeros_like(a[2]))
    x, weight, bias = pair(3, 6, 3, 40, 40)
    x.requires_grad_()
    alpha = torch.ones((), dtype=x.dtype, requires_grad=True)
    y = bandconv.conv2d(x, alpha * weight, alpha * bias, 1, 1)
    torch.autograd.grad(y.sum(), x, retain_graph=True)
    assert calls == []
    torch.autograd.grad(y.sum(), alpha)
    assert calls == [1]


def test_a_differentiated_backward_is_torchs_own():
    x, weight, bias = pair(3, 6, 3, 40, 36)
    ref = [t.clone().requires_grad_() for t in (x, weight, bias)]
    new = [t.clone().requires_grad_() for t in (x, weight, bias)]
    g = torch.randn(1, 6, 40, 36, dtype=x.dtype)
    gxa, = torch.autograd.grad(F.conv2d(*ref, padding=1), ref[0], g, create_graph=True)
    gxb, = torch.autograd.grad(bandconv.conv2d(*new, 1, 1), new[0], g, create_graph=True)
    assert torch.equal(gxa, gxb)
    assert torch.equal(torch.autograd.grad(gxa.square().sum(), ref[1])[0],
                       torch.autograd.grad(gxb.square().sum(), new[1])[0])


@pytest.mark.parametrize("case", ["batch of two", "one thread", "short image", "no weight gradient", "switched off"])
def test_steps_aside_where_it_does_not_apply(case, monkeypatch):
    x, weight, bias = pair(3, 6, 3, 20 if case == "short image" else 40, 40)
    if case == "batch of two":
        x = torch.cat([x, x])
    if case == "one thread":
        torch.set_num_threads(1)
    if case == "switched off":
        monkeypatch.setattr(bandconv, "ENABLED", False)
    x.requires_grad_()
    weight.requires_grad_(case != "no weight gradient")
    y = bandconv.conv2d(x, weight, bias, 1, 1)
    assert type(y.grad_fn).__name__ == "ConvolutionBackward0"


def test_under_vmap_it_is_torchs_own():
    """The batched finite-difference hypergradient runs the network under ``torch.func.vmap``."""
    x, weight, bias = pair(3, 6, 3, 40, 36)
    pair_of_weights = torch.stack([weight, 2 * weight]).requires_grad_()
    ys = torch.func.vmap(lambda w: bandconv.conv2d(x, w, bias, 1, 1))(pair_of_weights)
    torch.testing.assert_close(ys[1], F.conv2d(x, 2 * weight, bias, padding=1), rtol=1e-12, atol=1e-12)
    assert torch.isfinite(torch.autograd.grad(ys.sum(), pair_of_weights)[0]).all()
