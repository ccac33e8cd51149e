"""RUAS's local max (``ruas.local_max``): its fast CPU path gives the max-pool's values and
gradients bit for bit, ties included, and differentiates twice."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas_llv.space.models.ruas import local_max, shifted_max


def max_pool(x: torch.Tensor, window: int) -> torch.Tensor:
    """The definition: torch's max-pool at stride 1 over x zero-padded bottom and right."""
    return F.max_pool2d(F.pad(x, (0, window - 1, 0, window - 1)), window, stride=1)


def tied(*shape: int, channels_last: bool = False) -> torch.Tensor:
    """Values on a coarse grid, negative ones included, so windows hold ties (and beat the zero padding or not)."""
    x = (torch.randn(*shape, generator=torch.Generator().manual_seed(0)) * 2).round() / 4
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("window", [2, 3])
def test_values_and_gradients_are_the_max_pools(window, channels_last):
    x = tied(2, 3, 23, 17, channels_last=channels_last)
    assert (max_pool(x, window) == max_pool(x, window).roll(1, -1)).any()  # the test holds ties
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = max_pool(a, window), local_max(b, window)
    assert torch.equal(ya, yb)
    assert yb.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    g = torch.randn_like(ya)
    ga, = torch.autograd.grad(ya, a, g, create_graph=True)
    gb, = torch.autograd.grad(yb, b, g, create_graph=True)
    assert torch.equal(ga, gb)  # the same routing on ties: the first maximum in scan order
    # through the backward again (second-order methods): d/dx of a function of the gradient
    v = torch.randn_like(ga)
    ha, = torch.autograd.grad((ga * v).sum() + ya.square().sum(), a)
    hb, = torch.autograd.grad((gb * v).sum() + yb.square().sum(), b)
    assert torch.equal(ha, hb)


@pytest.mark.parametrize("window", [2, 3])
def test_without_gradients_it_is_the_shifted_views(window):
    x = tied(1, 3, 9, 14, channels_last=True)
    with torch.no_grad():
        assert torch.equal(local_max(x, window), max_pool(x, window))
    assert torch.equal(shifted_max(x, window), max_pool(x, window))


def test_a_constant_image_routes_each_window_to_its_first_position():
    x = torch.ones(1, 1, 3, 3, requires_grad=True)
    local_max(x).sum().backward()
    # the zero padding never wins against ones; every window's first position takes its gradient
    assert torch.equal(x.grad, torch.ones(1, 1, 3, 3))


def test_under_vmap_it_is_the_max_pool():
    """The batched finite-difference hypergradient runs the scene module under ``torch.func.vmap``."""
    x = tied(2, 1, 3, 11, 9).requires_grad_()
    y = torch.func.vmap(local_max)(x)
    assert torch.equal(y, torch.stack([max_pool(x[0], 2), max_pool(x[1], 2)]))
    assert torch.isfinite(torch.autograd.grad(y.sum(), x)[0]).all()
