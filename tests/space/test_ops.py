from __future__ import annotations

import pytest
import torch

from nas_llv.config import ConfigError
from nas_llv.space.ops import ALIASES, OPS, PAPER_NAMES, ConvOp, canonical_op, mixed_conv

TABLE1 = ["1-C", "3-C", "5-C", "7-C", "1-RC", "3-RC", "3-2-DC", "3-6-DC", "3-12-DC", "3-18-DC",
          "5-2-DC", "7-2-DC", "3-2-RDC", "SC"]


def test_table1_is_complete():
    assert sorted(PAPER_NAMES.values()) == sorted(TABLE1)
    assert all(canonical_op(abbr) in OPS for abbr in TABLE1)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("channels", [3, 6])
def test_op_forward_backward_keeps_shape(name, channels):
    op = OPS[name](channels)
    x = torch.randn(2, channels, 16, 12, requires_grad=True)
    y = op(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for p in op.parameters():
        assert p.grad is not None


@pytest.mark.parametrize("name", [n for n in OPS if n != "skip"])
def test_dense_kernel_reproduces_op(name):
    op = OPS[name](3).double()
    x = torch.randn(1, 3, 20, 20, dtype=torch.float64)
    size = op.extent
    k, b = op.dense_kernel(size)
    y = torch.nn.functional.conv2d(x, k, b, padding=size // 2)
    torch.testing.assert_close(y, op(x))


def test_mixed_conv_equals_weighted_sum():
    names = ["conv_1x1", "conv_3x3", "resconv_1x1", "resconv_3x3", "dilconv_3x3_d2", "resdilconv_3x3_d2", "skip"]
    ops = [OPS[n](4).double() for n in names]
    w = torch.softmax(torch.randn(len(ops), dtype=torch.float64), 0)
    x = torch.randn(2, 4, 15, 17, dtype=torch.float64)
    torch.testing.assert_close(mixed_conv(x, ops, w), sum(wi * op(x) for wi, op in zip(w, ops)))


def test_aliases_and_unknown_names():
    assert canonical_op("skip_connect") == "skip"
    assert canonical_op("resdilconv_3x3") == "resdilconv_3x3_d2"
    assert set(ALIASES.values()) <= set(OPS)
    with pytest.raises(ConfigError, match="unknown op 'conv_9x9'; allowed: conv_1x1"):
        canonical_op("conv_9x9")


def test_residual_op_adds_input():
    op = ConvOp(3, 3, residual=True)
    torch.nn.init.zeros_(op.op.weight)
    torch.nn.init.zeros_(op.op.bias)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(op(x), x)
