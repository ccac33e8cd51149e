"""The one op table: every candidate operation of RUAS Table 1, keyed by a readable name.

``OPS[name](C)`` builds a module that maps (N, C, H, W) -> (N, C, H, W). Each op is linear
in its input (a convolution with bias, possibly plus the identity), which the mixed edge
exploits: a softmax-weighted sum of linear ops is itself one convolution (see
``ConvOp.dense_kernel``). The paper's abbreviations (``3-C``, ``3-2-RDC``, ...) and the names
of the public RUAS code (``skip_connect``, ``resdilconv_3x3``) are aliases.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.space import bandconv


class ConvOp(nn.Module):
    """``op(x)`` or ``op(x) + x``: a k x k convolution with dilation d, 'same' padding.

    The convolution is kept as ``self.op`` so state-dict keys read ``<edge>.op.weight`` as
    in the public RUAS checkpoints.
    """

    def __init__(self, channels: int, kernel: int, dilation: int = 1, residual: bool = False) -> None:
        super().__init__()
        self.kernel, self.dilation, self.residual = kernel, dilation, residual
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Conv2d(channels, channels, kernel, padding=pad, dilation=dilation, bias=True)

    @property
    def extent(self) -> int:
        """Side of the receptive field: d * (k - 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.op(x)
        return y + x if self.residual else y

    def dense_kernel(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The equivalent undilated ``size x size`` kernel (C, C, size, size) and bias (C,)."""
        dense = place_kernel(self.op.weight, self.dilation, size)
        if self.residual:
            dense = dense + identity_kernel(dense, size)
        return dense, self.op.bias


class Skip(nn.Module):
    """The identity (SC)."""

    extent = 1

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x



def identity_kernel(like: torch.Tensor, size: int) -> torch.Tensor:
    """The identity map as a (C, C, size, size) kernel like ``like``: 1 at each channel's centre tap."""
    c = like.shape[0]
    eye = like.new_zeros(c, c, size, size)
    idx = torch.arange(c, device=like.device)
    eye[idx, idx, size // 2, size // 2] = 1.0
    return eye


def place_kernel(w: torch.Tensor, dilation: int, size: int, step: int = 1) -> torch.Tensor:
    """Kernel ``w`` (C_out, C_in, k, k) of dilation ``dilation`` as the same map on a centred
    ``size x size`` grid of dilation ``step`` (``dilation`` a multiple of ``step`` unless k = 1)."""
    k = w.shape[-1]
    stride = dilation // step if k > 1 else 1
    span = (k - 1) * stride + 1
    off = (size - span) // 2
    if stride == 1:
        return F.pad(w, (off, off, off, off)) if off else w
    out = w.new_zeros(*w.shape[:-2], size, size)  # (leading dims: one kernel or a stack of them)
    out[..., off:off + span:stride, off:off + span:stride] = w
    return out


def _conv(k: int, d: int = 1, residual: bool = False) -> Callable[[int], nn.Module]:
    return lambda c: ConvOp(c, k, d, residual)


# name -> (constructor, paper abbreviation)
_TABLE: dict[str, tuple[Callable[[int], nn.Module], str]] = {
    "conv_1x1": (_conv(1), "1-C"),
    "conv_3x3": (_conv(3), "3-C"),
    "conv_5x5": (_conv(5), "5-C"),
    "conv_7x7": (_conv(7), "7-C"),
    "resconv_1x1": (_conv(1, residual=True), "1-RC"),
    "resconv_3x3": (_conv(3, residual=True), "3-RC"),
    "dilconv_3x3_d2": (_conv(3, 2), "3-2-DC"),
    "dilconv_3x3_d6": (_conv(3, 6), "3-6-DC"),
    "dilconv_3x3_d12": (_conv(3, 12), "3-12-DC"),
    "dilconv_3x3_d18": (_conv(3, 18), "3-18-DC"),
    "dilconv_5x5_d2": (_conv(5, 2), "5-2-DC"),
    "dilconv_7x7_d2": (_conv(7, 2), "7-2-DC"),
    "resdilconv_3x3_d2": (_conv(3, 2, residual=True), "3-2-RDC"),
    "skip": (Skip, "SC"),
}

OPS: dict[str, Callable[[int], nn.Module]] = {name: ctor for name, (ctor, _) in _TABLE.items()}
PAPER_NAMES: dict[str, str] = {name: abbr for name, (_, abbr) in _TABLE.items()}
# The parameter-free identity ops (skip connections): what P-DARTS' cap counts (space/skip_cap.py).
SKIP_OPS: frozenset[str] = frozenset(name for name, (ctor, _) in _TABLE.items() if ctor is Skip)
ALIASES: dict[str, str] = {
    **{abbr: name for name, abbr in PAPER_NAMES.items()},
    "skip_connect": "skip",          # public RUAS code
    "dilconv_3x3": "dilconv_3x3_d2",
    "resdilconv_3x3": "resdilconv_3x3_d2",
}


def canonical_op(name: str) -> str:
    """The table name for ``name`` or one of its aliases; ConfigError lists the valid names."""
    if name in OPS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise ConfigError(f"unknown op '{name}'; allowed: {', '.join(OPS)} (or the paper's {', '.join(PAPER_NAMES.values())})")


def build_op(name: str, channels: int) -> nn.Module:
    return OPS[canonical_op(name)](channels)


ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "leaky_relu": lambda negative_slope=0.01: nn.LeakyReLU(negative_slope),
    "relu": lambda: nn.ReLU(),
    "prelu": lambda: nn.PReLU(),
    "gelu": lambda: nn.GELU(),
    "sigmoid": lambda: nn.Sigmoid(),
    "identity": lambda: nn.Identity(),
}


def build_activation(spec: dict) -> nn.Module:
    """``{'type': 'leaky_relu', 'negative_slope': 0.05}`` -> module."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in ACTIVATIONS:
        raise ConfigError(f"unknown activation '{kind}'; allowed: {', '.join(ACTIVATIONS)}")
    try:
        return ACTIVATIONS[kind](**spec)
    except TypeError as exc:
        raise ConfigError(f"activation '{kind}': {exc}") from None


def mixed_conv(x: torch.Tensor, ops: list[nn.Module], weights: torch.Tensor, identity: float = 0.0,
               by_dilation: bool = False) -> torch.Tensor:
    """Σ_i w_i op_i(x) (+ ``identity`` * x) for linear ops, as combined-kernel convolutions.

    Exact up to floating-point reassociation. ``by_dilation=False``: ONE convolution with the
    undilated kernel of the largest extent (for the RUAS set a 5x5; it measured faster on CPU in
    the default NCHW layout than a 3x3 plus a dilated 3x3). ``by_dilation=True``: one convolution
    per distinct dilation (the RUAS set: a 3x3 holding the 1x1, 3x3 and identity terms, plus a
    dilated 3x3 holding both d2 ops), fewer taps in all; it measured faster in channels-last
    layout (benchmarks/README.md). The identity of skip and residual ops (and ``identity``) is
    added at the kernel's centre.
    """
    return mixed_convs(x, [mixed_kernels(ops, weights, identity, by_dilation)])[0]


class Kernel(NamedTuple):
    """One convolution of a mixed edge: ``size x size`` taps at dilation ``step``; ``bias`` None for
    an identity-only edge (``weight`` is then the scalar factor of x)."""

    step: int
    size: int
    weight: torch.Tensor
    bias: torch.Tensor | None


def mixed_kernels(ops: list[nn.Module], weights: torch.Tensor, identity: float | torch.Tensor = 0.0,
                  by_dilation: bool = False) -> list[Kernel]:
    """The combined kernels of Σ_i w_i op_i (+ ``identity``) that ``mixed_conv`` convolves x with:
    ``stacked_kernels`` of this one edge. A 0-d tensor ``identity`` (float64: the auxiliary skip's β)
    is cast to the weights' dtype first, as a Python float is."""
    ident = torch.as_tensor(identity).to(weights).reshape(1)
    return stacked_kernels([ops], weights.unsqueeze(0), ident, by_dilation)[0]


def structure(ops: list[nn.Module]) -> tuple | None:
    """What ``stacked_kernels`` needs equal between edges built together: each candidate's kind,
    extent and residual flag and its weight's shape (None where a candidate is not linear)."""
    if not all(isinstance(op, (ConvOp, Skip)) for op in ops):
        return None
    return tuple((type(op).__name__, op.extent, getattr(op, "dilation", 1), getattr(op, "residual", False),
                  tuple(op.op.weight.shape) if isinstance(op, ConvOp) else None) for op in ops)


def stacked_kernels(ops: list[list[nn.Module]], weights: torch.Tensor, identity: torch.Tensor,
                    by_dilation: bool = False) -> list[list[Kernel]]:
    """``mixed_kernels`` of E edges of one ``structure`` at once: ``ops[e]`` edge e's candidates,
    ``weights`` (E, n) their op weights, ``identity`` (E,) each edge's extra identity term. Each
    sum over candidates is one ``einsum`` over the stacked weights instead of a product and an add
    per candidate and edge: the same kernels up to float rounding, built with about a tenth of the
    small operators (their dispatch and autograd bookkeeping, not their arithmetic, is what costs)."""
    first, n_edges = ops[0], len(ops)
    ident_at = [i for i, op in enumerate(first) if isinstance(op, Skip) or op.residual]
    ident = identity + weights[:, ident_at].sum(1) if ident_at else identity
    groups: dict[int, list[tuple[int, ConvOp]]] = {}
    for i, op in enumerate(first):
        if isinstance(op, ConvOp):
            groups.setdefault(op.dilation if by_dilation else 1, []).append((i, op))
    if not groups:
        return [[Kernel(1, 1, t, None)] for t in ident.unbind(0)]
    built = []
    for g, (step, members) in enumerate(sorted(groups.items())):
        size = (max(op.extent for _, op in members) - 1) // step + 1
        kernels = torch.stack([place_kernel(torch.stack([edge[i].op.weight for edge in ops]), op.dilation, size, step)
                               for i, op in members], 1)  # (E, m, C_out, C_in, size, size)
        biases = torch.stack([torch.stack([edge[i].op.bias for edge in ops]) for i, _ in members], 1)  # (E, m, C_out)
        w = weights[:, [i for i, _ in members]]
        kernel = torch.einsum("em,emoikl->eoikl", w, kernels)
        if g == 0:  # the identity goes to the centre of one kernel
            kernel = kernel + ident.view(-1, 1, 1, 1, 1) * identity_kernel(kernel[0], size)
        built.append((step, size, kernel.unbind(0), torch.einsum("em,emo->eo", w, biases).unbind(0)))
    return [[Kernel(step, size, k[e], b[e]) for step, size, k, b in built] for e in range(n_edges)]


def mixed_convs(x: torch.Tensor, edges: list[list[Kernel]]) -> list[torch.Tensor]:
    """Each edge's output on the one input ``x``, from its ``mixed_kernels``: the kernels of all
    edges at one dilation run as ONE convolution, side by side on the output channels (padded to
    the largest size at that dilation), and each edge's output is its channel slice of it.
    Exact up to float rounding; fewer, wider convolutions measured faster on CPU
    (benchmarks/README.md)."""
    out: list[torch.Tensor | None] = [None] * len(edges)
    steps: dict[int, list[tuple[int, Kernel]]] = {}
    for i, kernels in enumerate(edges):
        for k in kernels:
            if k.bias is None:
                out[i] = k.weight * x
            else:
                steps.setdefault(k.step, []).append((i, k))
    for step, members in sorted(steps.items()):
        size = max(k.size for _, k in members)
        if len(members) == 1:
            weight, bias = members[0][1].weight, members[0][1].bias
        else:
            weight = torch.cat([place_kernel(k.weight, 1, size) for _, k in members])
            bias = torch.cat([k.bias for _, k in members])
        y = bandconv.conv2d(x, weight, bias, padding=step * (size // 2), dilation=step)
        # split, not slices: its backward is one concatenation, not a zero-filled map per slice
        parts = y.split([k.weight.shape[0] for _, k in members], dim=1) if len(members) > 1 else (y,)
        for (i, _), part in zip(members, parts):
            out[i] = part if out[i] is None else out[i] + part
    return out
