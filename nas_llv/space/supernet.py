"""Supernet pieces built from a space: architecture parameters, mixed edges, cells.

The same ``Cell`` serves the supernet and the derived network; only the edge factory
differs (``MixedEdges`` makes labelled choices weighted by the relaxation of α, softmax(α) or
σ(α), ``FixedEdges`` makes the ops a genotype names). Both build from the one op table.
"""
from __future__ import annotations

import functools
import math
import operator
from typing import Callable, Iterator, Mapping, Protocol

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.space import nni_bridge
from nas_llv.config import ConfigError
from nas_llv.space.ops import (ConvOp, Kernel, Skip, build_activation, build_op, canonical_op, mixed_convs,
                               mixed_kernels, stacked_kernels, structure)
from nas_llv.space.spec import CellSpec, EdgeSpec, edge_label, graph_of

# Above this receptive field a merged kernel costs more than the separate convolutions.
MERGE_MAX_EXTENT = 7

# How α becomes op probabilities: DARTS' softmax over a label's candidates (they compete, summing
# to 1), or FairDARTS' sigmoid of each α_i on its own (Chu et al., ECCV 2020; docs/remedies.md).
RELAXATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda a: F.softmax(a, dim=-1),  # over the candidates: α's last dimension
    "sigmoid": torch.sigmoid,
}


def initial_alpha(relaxation: str, n: int) -> torch.Tensor:
    """α of a label with ``n`` candidates at the start of a search: DARTS' 1e-3 · N(0, 1), near-uniform
    and symmetry-breaking; for the sigmoid relaxation shifted by logit(1/n), so each σ(α_i) starts near
    1/n as softmax weights do. FairDARTS starts at σ = 0.5, which its batch-normalised ops do not feel;
    RUAS cells have no normalisation, and at 0.5 the weights of an edge sum to n/2: the demo search's
    denoiser started at a loss near 2e4 and diverged in its first step (docs/remedies.md)."""
    shift = -math.log(n - 1) if relaxation == "sigmoid" and n > 1 else 0.0
    return 1e-3 * torch.randn(n) + shift


class ArchParams(nn.Module):
    """One α vector per architecture label; edges with the same label share it.

    ``relaxation`` (a key of ``RELAXATIONS``) is not in the state dict: a search builds its supernet
    with its recipe's ``search.relaxation``, which the run's config and checkpoint keep."""

    def __init__(self, relaxation: str = "softmax") -> None:
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ConfigError(f"relaxation '{relaxation}' is unknown; allowed: {', '.join(RELAXATIONS)}")
        self.relaxation = relaxation
        self.alphas = nn.ParameterDict()
        self._labels: dict[str, str] = {}  # parameter key -> label ('.' is not allowed in keys)
        self.candidates: dict[str, tuple[str, ...]] = {}

    def add(self, label: str, names: tuple[str, ...]) -> None:
        if label in self.candidates:
            if self.candidates[label] != names:
                raise ConfigError(f"label '{label}' is shared by edges with different candidates: "
                                  f"{list(self.candidates[label])} vs {list(names)}")
            return
        key = label.replace(".", "__")
        self.alphas[key] = nn.Parameter(initial_alpha(self.relaxation, len(names)))
        self._labels[key] = label
        self.candidates[label] = names

    def __getitem__(self, label: str) -> nn.Parameter:
        return self.alphas[label.replace(".", "__")]

    def items(self) -> Iterator[tuple[str, nn.Parameter]]:
        for key, p in self.alphas.items():
            yield self._labels[key], p

    def prob(self, label: str, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """The op probabilities of ``label``'s candidates: softmax(α), or σ(α) with the sigmoid
        relaxation (``alpha``: an override of the label's α, e.g. a hypergradient's copy). The one
        place the relaxation is applied."""
        return RELAXATIONS[self.relaxation](self[label] if alpha is None else alpha)

    def prob_rows(self, labels: list[str]) -> torch.Tensor:
        """(len(labels), n): ``prob`` of each label, one row each, in one operation (labels with n
        candidates each)."""
        return RELAXATIONS[self.relaxation](torch.stack([self[label] for label in labels]))

    def _alphas(self, snapshot: Mapping[str, torch.Tensor] | None) -> Iterator[tuple[str, torch.Tensor]]:
        """(label, α detached) now, or of ``snapshot`` (label -> α, e.g. a past epoch's)."""
        for lab, a in self.items():
            yield lab, a.detach() if snapshot is None else snapshot[lab].to(a.device)

    def probs(self, snapshot: Mapping[str, torch.Tensor] | None = None) -> dict[str, dict[str, float]]:
        """label -> {op: op probability} (``prob``) of the α now, or of ``snapshot``."""
        return {lab: dict(zip(self.candidates[lab], self.prob(lab, a).tolist())) for lab, a in self._alphas(snapshot)}

    def prob_tensors(self) -> dict[str, dict[str, torch.Tensor]]:
        """``probs`` of the α now as 0-dim tensors on α's device, read by nobody yet (for the
        trajectory rows a search keeps on the device, ``speed.sync_every``)."""
        return {lab: dict(zip(self.candidates[lab], self.prob(lab, a).unbind())) for lab, a in self._alphas(None)}

    def genotype(self, snapshot: Mapping[str, torch.Tensor] | None = None) -> dict[str, str]:
        """label -> argmax op of the α now, or of ``snapshot`` (RUAS derivation: no 'none' op, fixed
        topology). Both relaxations are monotone in α, so this is also the argmax of the op probabilities
        (FairDARTS' threshold on σ(α) does not apply to a fixed topology: docs/remedies.md)."""
        return {lab: self.candidates[lab][int(a.argmax())] for lab, a in self._alphas(snapshot)}


class MixedEdge(nn.Module):
    """Σ_i w_i op_i(x) over the candidates of one label, w = ``ArchParams.prob`` (softmax(α) or σ(α)).

    ``merge``: when every candidate is a linear op (a convolution, the identity) of extent at most
    ``MERGE_MAX_EXTENT``, run the weighted sum as one convolution whose kernel is the weighted sum of
    the candidates' kernels (``ops.mixed_kernels``; exact). ``self.merge`` is whether it does."""

    def __init__(self, label: str, names: tuple[str, ...], channels: int, arch: ArchParams, merge: bool = True) -> None:
        super().__init__()
        self.label = label
        self.choice = nni_bridge.choice({n: build_op(n, channels) for n in names}, label)
        object.__setattr__(self, "_arch", arch)  # a reference, not a submodule: α stays out of the weights
        arch.add(label, names)
        ops = [m for _, m in nni_bridge.candidates(self.choice)]
        self.merge = merge and all(isinstance(m, (ConvOp, Skip)) for m in ops) and max(m.extent for m in ops) <= MERGE_MAX_EXTENT
        self.by_dilation = False  # merged: one kernel per dilation, not one dense kernel (``kernels_by_dilation``)
        self.structure = structure(ops)  # edges of one structure build their kernels together (``Cell.stack``)
        # DARTS-' auxiliary skip β·x (search/extensions/aux_skip.py): every op maps ``channels`` to ``channels``,
        # so every mixed edge takes it; a search-time term only, never in a derived network. 0.0 (off) or a 0-d
        # tensor, which a compiled forward takes as an input: a new β recompiles nothing (docs/speed.md)
        self.aux_skip: float | torch.Tensor = 0.0

    def forward(self, x: torch.Tensor, identity: float = 0.0) -> torch.Tensor:
        """The mixed op on ``x``, plus (``identity`` + ``aux_skip``) * x (a residual node's own input
        and the auxiliary skip: folded into the merged kernel when merged)."""
        if not nni_bridge.is_choice(self.choice):  # frozen by NNI: the chosen op alone
            y = self.choice(x)
            return y + identity * x if identity else y
        if self.merge:
            return mixed_convs(x, [self.kernels(identity)])[0]
        w = self._arch.prob(self.label)
        y = sum(wi * op(x) for wi, (_, op) in zip(w, nni_bridge.candidates(self.choice)))
        identity = identity + self.aux_skip
        return y + identity * x if torch.is_tensor(identity) or identity else y

    @property
    def joinable(self) -> bool:
        """Merged and still a choice: its merged kernels can share a convolution (``run_together``)."""
        return self.merge and nni_bridge.is_choice(self.choice)

    def kernels(self, identity: float = 0.0):
        """The merged kernels of this (joinable) edge at the current α (``ops.mixed_kernels``), with
        ``identity`` + ``aux_skip`` folded in."""
        w = self._arch.prob(self.label)
        return mixed_kernels(self.ops, w, identity + self.aux_skip, by_dilation=self.by_dilation)

    @property
    def ops(self) -> list[nn.Module]:
        """The candidate ops, in the order of the label's α."""
        return [m for _, m in nni_bridge.candidates(self.choice)]


def run_together(x: torch.Tensor, edges: list[tuple[MixedEdge, float]]) -> list[torch.Tensor]:
    """``[edge(x, identity) for edge, identity in edges]`` for joinable mixed edges on one input,
    with the kernels of all edges at one dilation as one convolution (``ops.mixed_convs``)."""
    return mixed_convs(x, [edge.kernels(identity) for edge, identity in edges])



class MixedPart(nn.Module):
    """Σ_i w_i part_i(*inputs) over whole candidate sub-networks of one label (w: ``ArchParams.prob``).

    Parts take the same inputs and return tensors of one shape (e.g. up-scalers, fusions).
    """

    def __init__(self, label: str, candidates: Mapping[str, nn.Module], arch: ArchParams) -> None:
        super().__init__()
        self.label = label
        self.choice = nni_bridge.choice(candidates, label)
        object.__setattr__(self, "_arch", arch)
        arch.add(label, tuple(candidates))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if not nni_bridge.is_choice(self.choice):
            return self.choice(*inputs)
        w = self._arch.prob(self.label)
        return sum(wi * part(*inputs) for wi, (_, part) in zip(w, nni_bridge.candidates(self.choice)))


class MixedGate(nn.Module):
    """The presence of a sub-network as a choice of one label: ``absent`` (``ABSENT``) or present.

    ``forward(r)`` = w_present · r, r: the sub-network's contribution (e.g. a residual, any shape),
    w = ``ArchParams.prob`` of the label (0 when no candidate is present). ``cover(*modules)``
    names the modules whose cost the gate scales (not registered here: they stay where they are in
    the module tree); the cost table multiplies their cost by w_present (``space.cost``).
    ``forced`` (None: the soft gate above) holds the sub-network present (1.0) or absent (0.0)
    whatever α says: the ``presence`` search extension evaluates the upper loss at both.
    """

    forced: float | None = None

    def __init__(self, label: str, names: tuple[str, ...], arch: ArchParams) -> None:
        super().__init__()
        self.label, self.names = label, names
        self.present = next((i for i, n in enumerate(names) if n != ABSENT), None)
        # NNI's view of the label (its labels, its freeze): r scaled by 0 or by 1, no weights
        self.choice = nni_bridge.choice({n: _Scale(float(n != ABSENT)) for n in names}, label)
        object.__setattr__(self, "_arch", arch)
        object.__setattr__(self, "covered", ())
        arch.add(label, names)

    def cover(self, *modules: nn.Module) -> None:
        object.__setattr__(self, "covered", tuple(modules))

    def weight(self) -> torch.Tensor:
        w = self._arch.prob(self.label)
        return w[self.present] if self.present is not None else w.new_zeros(())

    @property
    def absent(self) -> bool:
        """The sub-network is held absent (``forced`` 0): its owner may skip computing it."""
        return self.forced == 0.0

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        if not nni_bridge.is_choice(self.choice):  # frozen by NNI
            return self.choice(r)
        if self.forced is not None:
            return r * self.forced
        return self.weight() * r


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r * self.factor


ABSENT = "none"  # the candidate of a presence label that removes its sub-network


class EdgeFactory(Protocol):
    """Makes a cell edge from the op table, (``part``) a choice among named sub-networks, and
    (``gate``) the presence of one: None when the genotype drops it, else a module applied to its
    contribution (``MixedGate`` in the supernet, the identity in a derived network)."""

    def __call__(self, edge: EdgeSpec, label: str, channels: int, names: tuple[str, ...] = ()) -> nn.Module: ...

    def part(self, label: str, candidates: Mapping[str, Callable[[], nn.Module]]) -> nn.Module: ...

    def gate(self, label: str, names: tuple[str, ...]) -> nn.Module | None: ...


class MixedEdges:
    """Makes the supernet's edges; owns the ArchParams they read. ``merge``: ``MixedEdge``'s."""

    def __init__(self, arch: ArchParams, merge: bool = True) -> None:
        self.arch, self.merge = arch, merge

    def __call__(self, edge: EdgeSpec, label: str, channels: int, names: tuple[str, ...] = ()) -> nn.Module:
        return MixedEdge(label, tuple(canonical_op(n) for n in names), channels, self.arch, self.merge)

    def part(self, label: str, candidates: Mapping[str, Callable[[], nn.Module]]) -> nn.Module:
        return MixedPart(label, {name: make() for name, make in candidates.items()}, self.arch)

    def gate(self, label: str, names: tuple[str, ...]) -> nn.Module | None:
        return MixedGate(label, names, self.arch)


class FixedEdges:
    """Makes the derived network's edges from a genotype {label: op}."""

    def __init__(self, genotype: Mapping[str, str]) -> None:
        self.genotype = dict(genotype)

    def __call__(self, edge: EdgeSpec, label: str, channels: int, names: tuple[str, ...] = ()) -> nn.Module:
        if label not in self.genotype:
            raise ConfigError(f"genotype has no choice for edge '{label}'; "
                              f"it has: {', '.join(self.genotype) or 'none'}")
        op = canonical_op(self.genotype[label])
        if op not in names:
            raise ConfigError(f"genotype chooses '{op}' for '{label}', which is not among its candidates {list(names)}")
        return build_op(op, channels)

    def part(self, label: str, candidates: Mapping[str, Callable[[], nn.Module]]) -> nn.Module:
        if label not in self.genotype:
            raise ConfigError(f"genotype has no choice for part '{label}'; "
                              f"it has: {', '.join(self.genotype) or 'none'}")
        name = self.genotype[label]
        if name not in candidates:
            raise ConfigError(f"genotype chooses '{name}' for part '{label}'; candidates: {', '.join(candidates)}")
        return candidates[name]()

    def gate(self, label: str, names: tuple[str, ...]) -> nn.Module | None:
        name = self.part(label, {n: lambda n=n: n for n in names})
        return None if name == ABSENT else nn.Identity()


class Cell(nn.Module):
    """One DAG cell: nodes combine their in-edges (sum, residual add, or a 1x1 projection of their
    concatenation: ``concat_fuse``).

    x: (N, C, H, W) -> (N, C, H, W), C = spec.channels. ``concat_proj``: each ``concat_fuse`` node's
    1x1 convolution of the concatenation of its in-edges (node name -> conv; state-dict keys
    ``concat_proj.<node>.*``, which model files written before spelled ``fuse.<node>.*``).
    ``split_concat``: compute that projection as a sum of per-part 1x1 convolutions
    (``project_parts``) instead of concatenating first.
    """

    def __init__(self, spec: CellSpec, edges: EdgeFactory, prefix: str = "", stage: int | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.act = build_activation(spec.activation)
        self.edges = nn.ModuleDict()
        for e in spec.edges:
            width = spec.width(e.src)
            if e.label:
                self.edges[e.key] = edges(e, edge_label(prefix, e.label, stage), width, spec.candidates(e))
            elif e.op:
                self.edges[e.key] = build_op(e.op, width)
        self.concat_proj = nn.ModuleDict({
            n.name: nn.Conv2d(sum(spec.width(e.src) for e in spec.edges if e.dst == n.name), spec.width(n.name), 1)
            for n in spec.nodes if n.combine == "concat_fuse"
        })
        self.order = _topological(spec)
        # each edge's identity folded into its merged kernel: 1 into a residual node
        residual = {n.name for n in spec.nodes if n.combine == "residual"}
        self.identity = {e.key: 1.0 if e.dst in residual else 0.0 for e in spec.edges if e.key in self.edges}
        # merged mixed edges leaving one node run as one convolution per dilation (``run_together``):
        # source -> [(edge key, its identity)]
        by_src: dict[str, list[tuple[str, float]]] = {}
        for e in spec.edges:
            if e.key in self.edges and isinstance(self.edges[e.key], MixedEdge):
                by_src.setdefault(e.src, []).append((e.key, self.identity[e.key]))
        self.joint = {src: group for src, group in by_src.items() if len(group) > 1}
        self.join = True  # off: each edge alone (the lever's baseline in benchmarks/search_step.py)
        # merged mixed edges of one structure build their kernels together (``_kernels``); off: each its own
        self.stack = True
        self.split_concat = False  # a concat_fuse node as Σ of per-part 1x1 convolutions (``prefer_channels_last``)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # checkpoints written before the rename hold ``<prefix>fuse.<node>.*`` (OLD_CELL_KEYS)
        for key in [k for k in state_dict if _current_key(k, [prefix]) != k]:
            state_dict[_current_key(key, [prefix])] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _kernels(self) -> dict[str, list[Kernel]]:
        """Edge key -> merged kernels of this cell's joinable mixed edges at the current α, built in
        one ``ops.stacked_kernels`` call where they share a structure, an arch module, a kernel layout
        and an auxiliary skip (a RUAS cell's seven edges do); {} where not (each edge then builds its own)."""
        edges = [(k, m) for k, m in self.edges.items() if isinstance(m, MixedEdge) and m.joinable] if self.stack else []
        if len(edges) < 2:
            return {}
        first = edges[0][1]
        if any(m._arch is not first._arch or m.structure != first.structure or m.structure is None
               or m.by_dilation != first.by_dilation or not _same(m.aux_skip, first.aux_skip) for _, m in edges):
            return {}
        w = first._arch.prob_rows([m.label for _, m in edges])
        aux = first.aux_skip
        ident = w.new_tensor([self.identity[k] for k, _ in edges]) + (aux.to(w.dtype) if torch.is_tensor(aux) else aux)
        return dict(zip((k for k, _ in edges), stacked_kernels([m.ops for _, m in edges], w, ident, first.by_dilation)))

    def _edge(self, e: EdgeSpec, x: torch.Tensor, done: dict[str, torch.Tensor],
              kernels: dict[str, list[Kernel]]) -> torch.Tensor:
        if e.key in done:
            return done.pop(e.key)
        if e.key in kernels:
            return mixed_convs(x, [kernels[e.key]])[0]
        return self.edges[e.key](x) if e.key in self.edges else x

    def _residual(self, e: EdgeSpec, x: torch.Tensor, done: dict[str, torch.Tensor],
                  kernels: dict[str, list[Kernel]]) -> torch.Tensor:
        """edge(x) + x; a merged mixed edge adds x inside its merged kernel (exact, one add fewer)."""
        if e.key in done:  # computed with its source's other edges, x folded in
            return done.pop(e.key)
        if e.key in kernels:  # built with x folded in (``identity``)
            return mixed_convs(x, [kernels[e.key]])[0]
        edge = self.edges[e.key] if e.key in self.edges else None
        if isinstance(edge, MixedEdge) and edge.merge:
            return edge(x, identity=1.0)
        return self._edge(e, x, done, kernels) + x

    def _run_joint(self, src: str, x: torch.Tensor, done: dict[str, torch.Tensor],
                   kernels: dict[str, list[Kernel]]) -> None:
        """The merged mixed edges leaving ``src`` on ``x``, together, into ``done`` (edge key -> output)."""
        group = self.joint.get(src) if self.join else None
        if group and all(k in kernels for k, _ in group):
            done.update(zip((k for k, _ in group), mixed_convs(x, [kernels[k] for k, _ in group])))
        elif group and all(self.edges[k].joinable for k, _ in group):
            done.update(zip((k for k, _ in group), run_together(x, [(self.edges[k], i) for k, i in group])))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {self.spec.input.name: x}
        done: dict[str, torch.Tensor] = {}
        kernels = self._kernels()
        self._run_joint(self.spec.input.name, x, done, kernels)
        for node in self.order:
            ins = [e for e in self.spec.edges if e.dst == node.name]
            if node.combine == "concat_fuse":
                parts = [self._edge(e, values[e.src], done, kernels) for e in ins]
                proj = self.concat_proj[node.name]
                v = project_parts(proj, parts) if self.split_concat else proj(torch.cat(parts, dim=1))
            elif node.combine == "residual":
                v = _total(self._residual(e, values[e.src], done, kernels) for e in ins)
            else:
                v = _total(self._edge(e, values[e.src], done, kernels) for e in ins)
            values[node.name] = self.act(v) if node.activated else v
            self._run_joint(node.name, values[node.name], done, kernels)
        return values[self.spec.output.name]


# A cell's state-dict names as files written before the rename spell them -> as now.
OLD_CELL_KEYS = {"fuse.": "concat_proj."}


def current_state_keys(net: nn.Module, state: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``state`` (a state dict for ``net``) with the keys of ``net``'s cells that older model files
    and checkpoints spell the old way (``OLD_CELL_KEYS``) spelled as ``net`` names them; ``state``
    itself when it has none."""
    prefixes = [f"{name}." if name else "" for name, m in net.named_modules() if isinstance(m, Cell)]
    keys = {k: _current_key(k, prefixes) for k in state}
    if all(k == new for k, new in keys.items()):
        return state
    return {keys[k]: v for k, v in state.items()}


def _current_key(key: str, cell_prefixes: list[str]) -> str:
    for prefix in cell_prefixes:
        for old, new in OLD_CELL_KEYS.items():
            if key.startswith(prefix + old):
                return prefix + new + key[len(prefix + old):]
    return key


def project_parts(conv: nn.Conv2d, parts: list[torch.Tensor]) -> torch.Tensor:
    """``conv(cat(parts, 1))`` for a 1x1 ``conv`` as Σ_p conv_p(part_p), each part with its slice of
    the weights: the same map without the concatenation, which in channels-last is an interleaving
    copy (forward and backward) that cost more than the convolutions (benchmarks/README.md)."""
    weights = conv.weight.split([p.shape[1] for p in parts], dim=1)
    return _total(F.conv2d(p, w, conv.bias if i == 0 else None) for i, (p, w) in enumerate(zip(parts, weights)))


def _same(a: float | torch.Tensor, b: float | torch.Tensor) -> bool:
    """The same auxiliary-skip term: one tensor, or equal numbers."""
    return a is b or (not torch.is_tensor(a) and not torch.is_tensor(b) and a == b)


def _total(terms: Iterator[torch.Tensor]) -> torch.Tensor:
    """The sum of ``terms`` (not ``sum()``, whose ``0 + first`` copies a full-size map)."""
    return functools.reduce(operator.add, terms)


def _topological(spec: CellSpec) -> list:
    order = list(nx.topological_sort(graph_of(spec)))
    return [spec.node(n) for n in order if n != spec.input.name]


def prefer_channels_last(model: nn.Module, on: bool = True) -> None:
    """The choices that measured faster for a supernet in channels-last on CPU (``on``), or the
    plain ones: merged mixed edges with one kernel per dilation (``kernels_by_dilation``) and
    concat-fuse nodes as a sum of per-part 1x1 convolutions (``Cell.split_concat``). Exact either way."""
    kernels_by_dilation(model, on)
    set_all(model, Cell, split_concat=on)


def kernels_by_dilation(model: nn.Module, on: bool = True) -> None:
    """Merged mixed edges of ``model`` run one convolution per dilation among their candidates
    (``ops.mixed_kernels(by_dilation=True)``) instead of one dense kernel as large as the widest
    candidate's receptive field (``on`` False): faster in channels-last layout on CPU, where one
    dense kernel is faster in NCHW (benchmarks/README.md)."""
    set_all(model, MixedEdge, by_dilation=on)


def set_all(model: nn.Module, kind: type[nn.Module], **attrs: object) -> None:
    """Set ``attrs`` on every submodule of ``model`` of type ``kind`` (a path switch such as
    ``Cell.join`` or ``MixedEdge.by_dilation``)."""
    for m in model.modules():
        if isinstance(m, kind):
            for name, value in attrs.items():
                setattr(m, name, value)


def arch_modules(model: nn.Module) -> list[ArchParams]:
    return [m for m in model.modules() if isinstance(m, ArchParams)]


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every architecture parameter α of ``model`` (empty for a derived network)."""
    return [p for m in arch_modules(model) for _, p in m.items()]


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The network weights ω: every parameter that is not an α."""
    arch = {id(p) for p in arch_parameters(model)}
    return [p for p in model.parameters() if id(p) not in arch]


def genotype_of(model: nn.Module, snapshot: Mapping[str, torch.Tensor] | None = None) -> dict[str, str]:
    """label -> argmax op over every ArchParams in ``model``, at its α now or at ``snapshot`` (label -> α)."""
    out: dict[str, str] = {}
    for m in arch_modules(model):
        out.update(m.genotype(snapshot))
    return out


Probs = Mapping[str, Mapping[str, float]]  # label -> {op: probability}, as ``probs_of`` gives them


def probs_of(model: nn.Module, snapshot: Mapping[str, torch.Tensor] | None = None) -> dict[str, dict[str, float]]:
    """label -> {op: op probability} over every ArchParams in ``model``, at its α now or at ``snapshot``."""
    out: dict[str, dict[str, float]] = {}
    for m in arch_modules(model):
        out.update(m.probs(snapshot))
    return out


def prob_tensors(model: nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    """``probs_of`` at the α now, as 0-dim tensors on the device (``ArchParams.prob_tensors``)."""
    return {lab: ops for m in arch_modules(model) for lab, ops in m.prob_tensors().items()}


def derived_state_dict(supernet: nn.Module, genotype: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """The supernet's weights renamed for the derived network of ``genotype`` (others dropped).

    Keeps the chosen candidate of every mixed edge, and every weight outside mixed edges but those
    a presence gate covers when the genotype drops them.
    """
    rename: dict[str, str] = {}
    drop: list[str] = []
    gone: list[str] = []  # modules a presence gate drops, mixed edges and all
    paths = {id(m): path for path, m in supernet.named_modules()}
    for path, m in supernet.named_modules():
        if isinstance(m, (MixedEdge, MixedPart)):
            chosen = canonical_op(genotype[m.label]) if isinstance(m, MixedEdge) else genotype[m.label]
            rename[f"{path}.choice.{chosen}."] = f"{path}."
            drop.append(f"{path}.choice.")
        elif isinstance(m, MixedGate) and genotype[m.label] == ABSENT:  # the derived net lacks them
            gone.extend(f"{paths[id(c)]}." for c in m.covered)
    out = {}
    for key, value in supernet.state_dict().items():
        if any(key.startswith(g) for g in gone):
            continue
        new = next((key.replace(old, new, 1) for old, new in rename.items() if key.startswith(old)), None)
        if new is not None:
            out[new] = value
        elif not any(key.startswith(d) for d in drop) and ".alphas." not in key:
            out[key] = value
    return out


@torch.no_grad()
def set_one_hot(model: nn.Module, genotype: Mapping[str, str], scale: float = 1e4) -> None:
    """Set every α so its op probabilities are one-hot on the genotype's choice (exactly, in float):
    ``scale`` for the choice, ``-scale`` for the others (σ(0) would be 0.5, not 0)."""
    for m in arch_modules(model):
        for label, alpha in m.items():
            alpha.fill_(-scale)
            name = genotype[label] if genotype[label] in m.candidates[label] else canonical_op(genotype[label])
            alpha[m.candidates[label].index(name)] = scale
