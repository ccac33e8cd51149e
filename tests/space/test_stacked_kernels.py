"""A cell's mixed edges build their merged kernels together (``ops.stacked_kernels``,
``Cell.stack``): the same kernels, outputs and gradients as each edge building its own, in every
shipped space, with the auxiliary skip and with perturbed α; and each edge builds its own where
they do not share a structure."""
from __future__ import annotations

import pytest
import torch

from nas_llv.space.models import build_supernet
from nas_llv.space.ops import OPS, mixed_convs, mixed_kernels, stacked_kernels
from nas_llv.space.spec import load_space, shipped_spaces
from nas_llv.space.supernet import Cell, MixedEdge, arch_parameters, set_all

from test_supernet import _input, _main

RUAS_OPS = ["conv_1x1", "conv_3x3", "resconv_1x1", "resconv_3x3", "dilconv_3x3_d2", "resdilconv_3x3_d2", "skip"]


@pytest.mark.parametrize("by_dilation", [False, True])
def test_stacked_kernels_convolve_to_each_edges_weighted_sum(by_dilation):
    """Against the definition, Σ_i w_i op_i(x) + identity · x, for each of four edges built together."""
    torch.manual_seed(0)
    edges = [[OPS[n](3).double() for n in RUAS_OPS] for _ in range(4)]
    weights = torch.softmax(torch.randn(4, len(RUAS_OPS), dtype=torch.float64), -1)
    identity = torch.tensor([0.0, 1.0, 0.25, 1.0], dtype=torch.float64)
    x = torch.randn(2, 3, 15, 17, dtype=torch.float64)
    stacked = stacked_kernels(edges, weights, identity, by_dilation)
    for e, ops in enumerate(edges):
        assert len(stacked[e]) == (2 if by_dilation else 1)
        want = sum(w * op(x) for w, op in zip(weights[e], ops)) + identity[e] * x
        torch.testing.assert_close(mixed_convs(x, [stacked[e]])[0], want, rtol=1e-12, atol=1e-12)
        alone = mixed_kernels(ops, weights[e], identity[e], by_dilation)  # one edge: the same kernels
        for a, b in zip(stacked[e], alone):
            assert (a.step, a.size) == (b.step, b.size)
            torch.testing.assert_close(a.weight, b.weight, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(a.bias, b.bias, rtol=1e-12, atol=1e-12)


def _both_ways(net, x):
    """(outputs, gradients of every parameter) with the kernels built together, then edge by edge."""
    params = list(net.parameters())
    got = []
    for stack in (True, False):
        set_all(net, Cell, stack=stack)
        out = _main(net(x))
        got.append((out, torch.autograd.grad(out.square().mean(), params, allow_unused=True)))
    set_all(net, Cell, stack=True)
    return got


@pytest.mark.parametrize("name", shipped_spaces())
def test_a_supernet_is_the_same_with_kernels_built_together(name):
    torch.manual_seed(1)
    net = build_supernet(load_space(name)).double()
    with torch.no_grad():
        for a in arch_parameters(net):
            a.normal_()
    (ya, ga), (yb, gb) = _both_ways(net, _input(load_space(name)))
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
    for a, b in zip(ga, gb):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_cells_of_ruas_build_all_seven_together():
    net = build_supernet(load_space("ruas_denoise"))
    cells = [m for m in net.modules() if isinstance(m, Cell)]
    assert cells and all(len(c._kernels()) == 7 for c in cells)


def test_with_the_auxiliary_skip_as_a_tensor():
    torch.manual_seed(2)
    net = build_supernet(load_space("ruas_scene")).double()
    beta = torch.tensor(0.3, dtype=torch.float64)
    set_all(net, MixedEdge, aux_skip=beta)
    (ya, ga), (yb, gb) = _both_ways(net, torch.rand(1, 3, 12, 12, dtype=torch.float64))
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
    cell = next(m for m in net.modules() if isinstance(m, Cell))
    edge = next(m for m in cell.edges.values() if isinstance(m, MixedEdge))
    edge.aux_skip = torch.tensor(0.3, dtype=torch.float64)  # another tensor: not one shared term
    assert cell._kernels() == {}


def test_edges_of_other_structures_build_their_own():
    torch.manual_seed(3)
    net = build_supernet(load_space("ruas_scene")).double()
    cell = next(m for m in net.modules() if isinstance(m, Cell))
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    together = cell(x)
    edge = next(m for m in cell.edges.values() if isinstance(m, MixedEdge))
    edge.structure = ("another",)
    assert cell._kernels() == {}
    torch.testing.assert_close(cell(x), together, rtol=1e-10, atol=1e-10)
