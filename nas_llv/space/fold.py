"""Fold a derived network for inference: what is constant after derivation becomes fewer, larger ops.

A derived cell's edges are fixed linear ops (``space/ops.py``: a convolution with bias, maybe
plus the identity, or the identity alone), so every node's pre-activation is an affine map of
its sources that can be computed with fewer convolutions, exactly up to float rounding:

- a residual op, a residual node's ``+ src`` and a skip edge are identity kernels: added to the
  centre tap of the convolution on the same source (a 1x1 kernel likewise sits at the centre of a
  3x3); with no convolution left, the term is ``s * src`` for a scalar ``s``;
- parallel convolutions reading one source with the same kernel size and dilation become one
  convolution whose output channels are the nodes' channels side by side;
- a concat-fuse node's 1x1 convolution of the concatenation is a sum of per-part 1x1 convolutions
  (``supernet.project_parts``): in channels_last the concatenation is an interleaving copy that cost
  more than the convolutions.

``fold(net)`` returns a copy of ``net`` with each derived ``Cell`` replaced by a ``FoldedCell``,
RUAS's 2x2 local maximum taken as the maximum of four shifted views (``pool``) instead of
``max_pool2d`` (9-13x slower here at stride 1), and every weight and activation in channels_last
(1x1 convolutions on 3-24 channels are 20-50x slower in NCHW with oneDNN). Anything else (a
supernet's mixed edges, the noise estimator, stems and heads) is left as it is, in channels_last.
The plain network stays the reference: ``benchmarks/inference.py`` times one against the other.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.space.models.ruas import SceneModule, shifted_max
from nas_llv.space.ops import ConvOp, Skip, identity_kernel, place_kernel
from nas_llv.space.supernet import Cell, project_parts


@dataclass
class Term:
    """One affine map of a source: conv(src; weight, bias, dilation) + scale * src, or scale * src alone."""

    src: str
    weight: torch.Tensor | None = None  # (C_out, C_in, k, k)
    bias: torch.Tensor | None = None
    dilation: int = 1
    scale: float = 0.0

    @property
    def size(self) -> int:
        return 1 if self.weight is None else self.weight.shape[-1]


def _edge_terms(edge: nn.Module | None, src: str) -> list[Term]:
    """The terms of one edge op (None: an unlabelled identity edge)."""
    if edge is None or isinstance(edge, Skip):
        return [Term(src, scale=1.0)]
    if isinstance(edge, ConvOp):
        w, b = edge.op.weight.detach(), edge.op.bias.detach()
        return [Term(src, w, b, edge.dilation, 1.0 if edge.residual else 0.0)]
    raise TypeError(f"not a fixed linear op: {type(edge).__name__}")


def merge(terms: list[Term]) -> Term:
    """Σ terms of one source as one term: kernels on a common grid (their dilation when they share
    one, else dense), identities at the centre tap."""
    convs = [t for t in terms if t.weight is not None]
    scale = sum(t.scale for t in terms)
    if not convs:
        return Term(terms[0].src, scale=scale)
    dilations = {t.dilation for t in convs if t.size > 1} or {1}
    dil = dilations.pop() if len(dilations) == 1 else 1
    size = max((t.dilation * (t.size - 1)) // dil + 1 for t in convs)
    weight = sum(place_kernel(t.weight, t.dilation, size, dil) for t in convs)
    bias = sum(t.bias for t in convs)
    if scale:
        weight = weight + scale * identity_kernel(weight, size)
    return Term(terms[0].src, weight, bias, dil, 0.0)


class FoldedCell(nn.Module):
    """A derived ``Cell`` computed with merged kernels; the same map, x: (N, C, H, W) -> (N, C, H, W).

    ``plan``: per node in topological order, its terms as (source, conv index, channel slice) for
    a convolution output or (source, None, scale) for ``scale * source``; ``convs`` holds the
    merged convolutions, one per (source, kernel size, dilation).
    """

    def __init__(self, cell: Cell) -> None:
        super().__init__()
        spec = cell.spec
        self.act, self.input, self.output = cell.act, spec.input.name, spec.output.name
        node_terms = {n.name: self._node_terms(cell, n) for n in cell.order}
        self.convs = nn.ModuleList()
        self.plan: list[tuple[str, str, bool, list[tuple]]] = []
        groups: dict[tuple[str, int, int], tuple[int, list[tuple[str, int, Term]]]] = {}
        for node in cell.order:
            entries = []
            for i, term in enumerate(node_terms[node.name]):
                if term.weight is None:
                    entries.append((term.src, None, term.scale))
                    continue
                key = (term.src, term.size, term.dilation) if node.combine != "concat_fuse" else (node.name, i, 0)
                gid, members = groups.setdefault(key, (len(groups), []))
                members.append((node.name, i, term))
                entries.append((term.src, gid, len(members) - 1))
            self.plan.append((node.name, node.combine, node.activated, entries))
        self.concat_proj = nn.ModuleDict({k: v for k, v in cell.concat_proj.items()})
        self._build_convs(groups)

    @staticmethod
    def _node_terms(cell: Cell, node) -> list[Term]:
        spec = cell.spec
        ins = [e for e in spec.edges if e.dst == node.name]
        if node.combine == "concat_fuse":  # each in-edge is one slot of the concatenation
            return [merge(_edge_terms(cell.edges[e.key] if e.key in cell.edges else None, e.src)) for e in ins]
        by_src: dict[str, list[Term]] = {}
        for e in ins:
            terms = _edge_terms(cell.edges[e.key] if e.key in cell.edges else None, e.src)
            if node.combine == "residual":
                terms.append(Term(e.src, scale=1.0))
            by_src.setdefault(e.src, []).extend(terms)
        return [merge(terms) for terms in by_src.values()]

    def _build_convs(self, groups: dict) -> None:
        """One convolution per group; each member's entry becomes its (start, end) channel slice."""
        slices: dict[tuple[int, int], tuple[int, int]] = {}
        for gid, members in groups.values():
            first = members[0][2]
            weight = torch.cat([t.weight for _, _, t in members])
            bias = torch.cat([t.bias for _, _, t in members])
            conv = nn.Conv2d(weight.shape[1], weight.shape[0], first.size, dilation=first.dilation,
                             padding=first.dilation * (first.size - 1) // 2).to(weight).requires_grad_(False)
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
            self.convs.append(conv)
            start = 0
            for j, (_, _, t) in enumerate(members):
                slices[gid, j] = (start, start + t.weight.shape[0])
                start += t.weight.shape[0]
            if len(members) == 1:
                slices[gid, 0] = (0, -1)  # the whole output: no slice
        self.plan = [(name, combine, act, [e if e[1] is None else (e[0], e[1], slices[e[1], e[2]]) for e in entries])
                     for name, combine, act, entries in self.plan]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input: x}
        outs: dict[int, torch.Tensor] = {}
        for name, combine, activated, entries in self.plan:
            parts = []
            for src, gid, arg in entries:
                if gid is None:
                    parts.append(values[src] if arg == 1.0 else arg * values[src])
                    continue
                if gid not in outs:
                    outs[gid] = self.convs[gid](values[src])
                start, end = arg
                parts.append(outs[gid] if end < 0 else outs[gid][:, start:end])
            if combine == "concat_fuse":
                v = project_parts(self.concat_proj[name], parts)
            else:
                v = parts[0]
                for p in parts[1:]:
                    v = v + p
            values[name] = self.act(v) if activated else v
        return values[self.output]


def foldable(cell: Cell) -> bool:
    """A derived cell: every edge a fixed linear op (a supernet's mixed edges are not)."""
    return all(isinstance(m, (ConvOp, Skip)) for m in cell.edges.values())


@torch.no_grad()
def fold(net: nn.Module, cells: bool = True, pool: bool = True, channels_last: bool = True,
         compile: bool = False) -> nn.Module:
    """A copy of ``net`` for inference, ``net`` left unchanged: derived cells folded (``cells``), RUAS's
    local maximum by shifted views (``pool``), weights and activations in channels_last
    (``channels_last``: the copy is wrapped in ``ChannelsLast``, which takes inputs in any format),
    and (``compile``) ``torch.compile``d with frozen weights and dynamic sizes: the first image then
    waits for a compilation (about a minute on 2 CPU cores; needs a C++ compiler), the images after
    it run faster than the eager fold (``benchmarks/README.md``). Each part gives the same outputs up
    to float rounding; see the module docstring."""
    net = copy.deepcopy(net).eval()
    if cells:
        _replace_cells(net)
    if pool:
        for m in net.modules():
            if isinstance(m, SceneModule):
                m.pool = shifted_max
    if channels_last:
        net = ChannelsLast(net.to(memory_format=torch.channels_last)).eval()
    if compile:
        # freezing: weights become constants, so oneDNN gets them prepacked, convs fused with activations
        net = torch.compile(net, dynamic=True, options={"freezing": True})
    return net


def _replace_cells(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, Cell) and foldable(child):
            setattr(module, name, FoldedCell(child))
        else:
            _replace_cells(child)


class ChannelsLast(nn.Module):
    """Runs ``net`` on its input in channels_last memory format (the outputs keep that format)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, y: torch.Tensor):
        return self.net(y.contiguous(memory_format=torch.channels_last))
