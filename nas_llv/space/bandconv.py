"""A 'same' convolution whose weight gradient uses every CPU thread for a batch of one image.

oneDNN, torch's CPU convolution, splits a weight gradient over the images of a batch, so for the
search's batch of one (RUAS searches at batch 1) it runs on one thread however many there are:
a 6->12 3x3 weight gradient at 320x320 takes 1.9 ms on 1 and on 2 threads, where the forward and
the input gradient halve. ``conv2d`` computes the same forward and input gradient as
``F.conv2d`` and the weight gradient over the image's top and bottom row bands (each with the
rows its kernel reaches across the cut) as a batch of two: 1.1 ms on 2 threads
(benchmarks/README.md, "Levers"). The forward and the input gradient are torch's own bit for bit;
the weight and bias gradients are the same sums in another order (float rounding).

It applies on CPU, batch 1, two or more threads, outside ``torch.compile`` (which traces
``F.conv2d``) and ``torch.func`` transforms, and for a first-order backward: a backward that
builds a graph (second-order methods) runs torch's own, which is differentiable twice.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

#: below this many output rows per band the split is not worth its copies
MIN_BAND_ROWS = 16
#: off: always torch's own backward (benchmarks/search_step.py's ``band_grads`` lever)
ENABLED = True


def eager_cpu(x: torch.Tensor) -> bool:
    """Whether a hand-written autograd function may run on ``x``: a CPU tensor, in eager mode (not
    traced by ``torch.compile``, which compiles torch's own ops) and under no ``torch.func``
    transform (the batched finite-difference hypergradient's ``vmap``, which needs torch's ops)."""
    return (not torch.compiler.is_compiling() and x.device.type == "cpu"
            and torch._C._functorch.peek_interpreter_stack() is None)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
           dilation: int) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=padding, dilation=dilation)`` with stride 1 and 'same'
    padding (``padding == dilation * (k // 2)``, k odd), its weight gradient by row bands where
    that is faster (module docstring)."""
    if (not eager_cpu(x) or not ENABLED or x.shape[0] != 1 or torch.get_num_threads() < 2  # compile: no graph break
            or x.shape[-2] < 2 * MIN_BAND_ROWS or padding >= MIN_BAND_ROWS
            or not (torch.is_grad_enabled() and weight.requires_grad)):
        return F.conv2d(x, weight, bias, padding=padding, dilation=dilation)
    return _BandConv.apply(x, weight, bias, padding, dilation)


class _BandConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int,
                dilation: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation, ctx.has_bias = padding, dilation, bias is not None
        return F.conv2d(x, weight, bias, padding=padding, dilation=dilation)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        p, d = ctx.padding, ctx.dilation
        need = [_needed(ctx, i) for i in range(3)]
        need[2] = need[2] and ctx.has_bias
        if torch.is_grad_enabled():  # a backward that is itself differentiated: torch's own
            return (*_torch_backward(grad, x, weight, p, d, need, ctx.has_bias), None, None)
        gx = gw = gb = None
        if need[0]:
            gx = _torch_backward(grad, x, weight, p, d, [True, False, False])[0]
        if need[1]:
            gw = band_weight_grad(grad, x, weight, p, d)
        if need[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None


def _torch_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: int, dilation: int,
                    mask: list[bool], bias: bool = False) -> tuple[torch.Tensor | None, ...]:
    """torch's own gradients of a stride-1 convolution (input, weight, bias: those ``mask`` asks for)."""
    return torch.ops.aten.convolution_backward(grad, x, weight, [weight.shape[0]] if bias else None, [1, 1],
                                               [padding, padding], [dilation, dilation], False, [0, 0], 1, mask)


def _needed(ctx: Any, i: int) -> bool:
    """Whether this backward pass uses input ``i``'s gradient: required at the forward
    (``needs_input_grad``) and, where torch can tell, on a path to what this pass differentiates
    (``torch.autograd.grad`` with ``inputs``), as torch's own convolution backward skips it.
    The search's kernels are not leaves (built from α), so this is known for every one of them."""
    if not ctx.needs_input_grad[i]:
        return False
    node = ctx.next_functions[i][0]
    will = getattr(torch._C, "_will_engine_execute_node", None)
    if node is None or will is None:
        return node is not None
    try:
        return bool(will(node))
    except RuntimeError:  # a leaf under torch.autograd.grad: torch cannot tell, so compute it
        return True


def band_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: int,
                     dilation: int) -> torch.Tensor:
    """d/d weight of ``<grad, conv2d(x, weight)>`` for one image (N = 1), computed as a batch of two
    row bands so that oneDNN splits it over two threads."""
    _, c, h, w = x.shape
    p = padding
    top = (h + 1) // 2  # output rows of each band (the bottom one zero-padded by a row if h is odd)
    rows = top + 2 * p
    xh = x[0].permute(1, 2, 0)  # (H, W, C) view: a copy only where x is not channels-last
    bands = x.new_zeros(2, rows, w + 2 * p, c)
    bands[0, p:p + min(h, top + p), p:p + w] = xh[:min(h, top + p)]  # input rows -p .. top + p
    lo = top - p  # the bottom band's first input row (>= 0: a band has MIN_BAND_ROWS > p rows)
    bands[1, :min(h, lo + rows) - lo, p:p + w] = xh[lo:min(h, lo + rows)]
    gh = grad[0].permute(1, 2, 0)
    if h % 2:
        gbands = grad.new_zeros(2, top, w, grad.shape[1])
        gbands.view(2 * top, w, -1)[:h] = gh
    else:
        gbands = gh.reshape(2, top, w, grad.shape[1])
    return _torch_backward(gbands.permute(0, 3, 1, 2), bands.permute(0, 3, 1, 2), weight, 0, dilation,
                           [False, True, False])[1]
