"""The fast search path is exact: the default recipe (merged, by-dilation kernels in channels-last,
speed shortcuts) follows the same α trajectory as ``network.merge_edges: false`` with every speed option
off (the yardstick of benchmarks/search_step.py), and logs the upper loss it computed."""
from __future__ import annotations

import pytest
import torch

from conftest import RECIPES, assert_same_output_and_grads
from nas_llv.recipe import load_recipe
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.space.ops import OPS, mixed_conv, mixed_convs, mixed_kernels

STEPS = 20
YARDSTICK = ["network.merge_edges=false", "speed.shortcuts=false", "speed.amp=null", "speed.channels_last=false",
             "speed.compile=false"]


def demo_searcher(tmp_path, method: str, overrides: list[str]) -> Searcher:
    """The demo recipe at 16x16 crops, batch 1 (seconds for 20 steps); one epoch spans the run."""
    recipe = load_recipe(RECIPES / "ruas_demo.yaml", [
        "device=cpu", "data.demo_size=32", "data.crop=16", "data.batch_size=1", f"search.hypergrad={{type: {method}}}",
        "search.steps_per_epoch=100", "search.checkpoint_every=1000", *overrides])
    s = Searcher(recipe)
    s.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return s


def alpha_trajectory(s: Searcher, steps: int = STEPS) -> torch.Tensor:
    """α after each iteration up to ``steps`` level updates (a row: every α, concatenated)."""
    start, rows = 0.0, []
    try:
        while s.step < steps:
            s.advance(start)
            rows.append(torch.cat([p.detach().flatten().clone() for _, p in sorted(s.net.named_parameters())
                                   if ".alphas." in _]))
    finally:
        s.close()
    return torch.stack(rows)


@pytest.fixture(scope="module")
def yardstick(tmp_path_factory):
    """The yardstick's α trajectory for a method, computed once per module."""
    runs: dict[str, torch.Tensor] = {}

    def get(method: str) -> torch.Tensor:
        if method not in runs:
            runs[method] = alpha_trajectory(demo_searcher(tmp_path_factory.mktemp("yardstick"), method, YARDSTICK))
        return runs[method]
    return get


@pytest.mark.parametrize("method", ["finite_difference", "first_order"])
@pytest.mark.parametrize("channels_last", [True, False])
def test_fast_path_follows_the_yardstick_alpha_trajectory(tmp_path, yardstick, method, channels_last):
    ref = yardstick(method)
    fast = alpha_trajectory(demo_searcher(tmp_path, method, [f"speed.channels_last={str(channels_last).lower()}"]))
    assert ref.shape == fast.shape and ref.shape[0] == STEPS // 2  # one row per iteration (scene + task)
    moved = (ref[-1] - ref[0]).abs().max()
    assert moved > 1e-3  # α moved, so the comparison means something
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("by_dilation", [False, True])
@pytest.mark.parametrize("identity", [0.0, 1.0])
def test_mixed_conv_is_the_weighted_sum_of_the_ruas_ops(by_dilation, identity):
    names = ["conv_1x1", "conv_3x3", "resconv_1x1", "resconv_3x3", "dilconv_3x3_d2", "resdilconv_3x3_d2", "skip"]
    ops = [OPS[n](4) for n in names]
    w = torch.softmax(torch.randn(len(ops)), 0)
    x = torch.randn(2, 4, 11, 9).contiguous(memory_format=torch.channels_last if by_dilation else torch.contiguous_format)
    want = sum(wi * op(x) for wi, op in zip(w, ops)) + identity * x
    torch.testing.assert_close(mixed_conv(x, ops, w, identity, by_dilation=by_dilation), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("by_dilation", [False, True])
def test_edges_run_together_equal_each_edge_alone(by_dilation):
    """``mixed_convs`` joins the kernels of several edges on one input (one convolution per dilation);
    each edge's output, and the gradients to its weights and α-weights, are those of ``mixed_conv``."""
    sets = [["conv_1x1", "conv_3x3", "dilconv_3x3_d2", "skip"], ["resconv_3x3", "resdilconv_3x3_d2", "conv_1x1"],
            ["skip"], ["conv_5x5", "dilconv_3x3_d2"]]
    torch.manual_seed(0)
    fmt = torch.channels_last if by_dilation else torch.contiguous_format
    x = torch.randn(1, 4, 12, 10, dtype=torch.float64).contiguous(memory_format=fmt).requires_grad_()
    edges = [([OPS[n](4).double() for n in names], torch.softmax(torch.randn(len(names), dtype=torch.float64), 0)
              .requires_grad_(), float(i % 2)) for i, names in enumerate(sets)]
    together = mixed_convs(x, [mixed_kernels(ops, w, ident, by_dilation) for ops, w, ident in edges])
    alone = [mixed_conv(x, ops, w, ident, by_dilation) for ops, w, ident in edges]
    leaves = [x] + [p for ops, w, _ in edges for p in [w, *(q for op in ops for q in op.parameters())]]
    g = [torch.randn_like(y) for y in alone]
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b)
    grads_together = torch.autograd.grad(together, leaves, g)
    grads_alone = torch.autograd.grad(alone, leaves, g)
    for a, b in zip(grads_together, grads_alone):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("space", ["ruas_denoise", "ruas_scene"])
def test_cell_choices_for_channels_last_are_exact(space):
    """A supernet with its mixed edges of one source run together and its concat-fuse nodes as per-part
    1x1 convolutions (``prefer_channels_last``) computes what each edge alone and the concatenation
    compute: the same output and gradients to every weight and α."""
    from nas_llv.space.models import build_supernet
    from nas_llv.space.spec import load_space
    from nas_llv.space.supernet import Cell, arch_parameters, prefer_channels_last, set_all

    torch.manual_seed(0)
    net = build_supernet(load_space(space)).double()
    for a in arch_parameters(net):
        a.data.normal_()
    x = torch.rand(1, 3, 16, 12, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    params = list(net.parameters()) + arch_parameters(net)

    def run(fast: bool):
        prefer_channels_last(net, fast)
        set_all(net, Cell, join=fast)
        out = net(x)
        y = out["u"] if isinstance(out, dict) else out
        return y, torch.autograd.grad(y.square().sum(), params, allow_unused=True)

    fast = run(True)
    assert any(c.joint and c.split_concat for c in net.modules() if isinstance(c, Cell))  # the paths differ
    assert_same_output_and_grads(fast, run(False))
