"""What each candidate of a supernet costs, and a network's expected cost under its α.

A ``CostTable`` holds, for every label, the cost of each candidate on the inputs its edges (or
parts) meet in one forward pass at a stated input size, summed over the edges that share the
label (a RUAS module's K stages share one architecture); and the cost of everything that is not
searched (``fixed``: the cells' 1x1 fusions, the noise estimator, ...). A presence label
(``supernet.MixedGate``, e.g. ``denoise.presence``) scales the cost of the modules it covers, their
labels' and their own unsearched part (kept as the cost of its present candidate), by the weight of
that candidate (``gates``). Two kinds:

- ``flops``: torch's FLOP counter (``metrics.count_flops``: 2 per multiply-add of convolutions,
  nothing for element-wise ops). ``fixed`` is counted too, so the cost of a genotype is its
  derived network's FLOPs at that size, exactly (tests/space/test_cost.py).
- ``latency``: a lookup table of each candidate's median wall-clock time (ms) on this machine, on
  the captured input (ProxylessNAS, Cai et al. 2019; FBNet, Wu et al. 2019). Latency does not add
  up exactly (the derived network's own time includes the layers between the edges and the
  allocator), so ``fixed`` is 0 and the table speaks of the searched ops alone.

The expected cost (ProxylessNAS Eq. 4) is E[cost] = fixed + Σ_label Σ_op w_label(op) cost_label(op),
with w the op probabilities (``ArchParams.prob``: softmax(α), or σ(α) for FairDARTS): a
differentiable function of α. A label inside a presence gate g counts w_g(present) times over: the
expectation of a product of independent choices.
"""
from __future__ import annotations

import contextlib
import copy
import csv
import logging
import io
import statistics
from dataclasses import dataclass, field
from typing import Iterator, Literal, Mapping, Sequence

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.metrics import count_flops
from nas_llv.metrics.cost import run_times
from nas_llv.space import nni_bridge
from nas_llv.space.genotype import random_choices
from nas_llv.space.supernet import Cell, MixedEdge, MixedGate, MixedPart, arch_modules

log = logging.getLogger(__name__)

CostKind = Literal["flops", "latency"]
UNITS = {"flops": "GFLOPs", "latency": "ms"}


@dataclass
class CostTable:
    """label -> {candidate: cost}, plus ``fixed``; costs in ``UNITS[kind]`` at ``size`` (W, H).
    ``gates``: presence label -> (its present candidate, the labels whose cost counts only when it
    is chosen)."""

    kind: CostKind
    size: tuple[int, int]
    costs: dict[str, dict[str, float]]
    fixed: float = 0.0
    gates: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)

    def within(self) -> dict[str, str]:
        """label -> the presence label that gates it (labels outside every gate are absent)."""
        return {label: gate for gate, (_, labels) in self.gates.items() for label in labels}

    def of(self, genotype: Mapping[str, str]) -> float:
        """The cost of one genotype (label -> op), ``fixed`` included."""
        missing = sorted(set(self.costs) - set(genotype))
        if missing:
            raise ConfigError(f"cost of a genotype: no choice for {missing}")
        within = self.within()
        return self.fixed + sum(self.costs[label][genotype[label]] for label in self.costs
                                if label not in within or genotype[within[label]] == self.gates[within[label]][0])

    def expected(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """E[cost] = fixed + Σ_label <probs[label], costs of its candidates>; ``probs``:
        label -> op probabilities (in candidate order), every label of the table."""
        terms = {label: probs[label] @ self.vector(label, probs[label]) for label in self.costs}
        for gate, (present, labels) in self.gates.items():
            inside = torch.stack([terms.pop(label) for label in labels]).sum()
            terms[gate] = terms[gate] + probs[gate][list(self.costs[gate]).index(present)] * inside
        return self.fixed + torch.stack(list(terms.values())).sum()

    def vector(self, label: str, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(list(self.costs[label].values()), dtype=like.dtype, device=like.device)

    def load(self, text: str) -> None:
        """Take the costs of a table ``to_csv`` wrote (a resumed run keeps the numbers it started with)."""
        saved = from_csv(text, self.kind)
        self.size, self.costs, self.fixed, self.gates = saved.size, saved.costs, saved.fixed, saved.gates

    def cheapest(self) -> float:
        within = self.within()
        least = {label: min(c.values()) for label, c in self.costs.items() if label not in within}
        for gate, (present, labels) in self.gates.items():
            inside = sum(min(self.costs[label].values()) for label in labels)
            least[gate] = min(c + (inside if name == present else 0.0) for name, c in self.costs[gate].items())
        return self.fixed + sum(least.values())

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        # a 'within' column (gate:present) only where a presence label gates others
        within = {label: f"{gate}:{self.gates[gate][0]}" for label, gate in self.within().items()}
        extra = (lambda label: [within.get(label, "")]) if self.gates else (lambda label: [])
        writer.writerow(["label", "candidate", f"cost_{UNITS[self.kind]}", "size", *(["within"] if self.gates else [])])
        size = f"{self.size[0]}x{self.size[1]}"
        writer.writerow(["(fixed)", "", repr(self.fixed), size, *extra("")])
        for label, ops in self.costs.items():
            for op, cost in ops.items():
                writer.writerow([label, op, repr(cost), size, *extra(label)])
        return out.getvalue()


def measure(net: nn.Module, kind: CostKind, size: tuple[int, int], repeats: int = 10) -> CostTable:
    """The cost table of supernet ``net`` on one (1, 3, H, W) input; ``net`` is left as it was.

    FLOPs are counted on a copy on the meta device (shapes only: instant at any size), or on the
    network's own device where a forward needs real values; latency runs each candidate for real.
    """
    if kind == "flops":
        try:
            return _measure(copy.deepcopy(net).to("meta"), kind, size, repeats)
        except (NotImplementedError, RuntimeError) as exc:  # data-dependent control flow
            log.info("cost: counting FLOPs on real tensors (%s)", str(exc).splitlines()[0])
    return _measure(net, kind, size, repeats)


def _measure(net: nn.Module, kind: CostKind, size: tuple[int, int], repeats: int) -> CostTable:
    w, h = size
    x = torch.rand(1, 3, h, w, device=next(net.parameters()).device)
    inputs: dict[nn.Module, tuple[str, tuple]] = {}
    covered: dict[nn.Module, tuple[str, tuple]] = {}
    total = 0
    with _every_edge_called(net), _captured(net, inputs), _captured_covered(net, covered), torch.no_grad():
        if kind == "flops":
            total = count_flops(net, x)
        else:
            net(x)  # the inputs each edge meets
        gates = _gate_costs(net, covered, inputs, kind)
    costs: dict[str, dict[str, float]] = {}
    seen: dict[tuple, float] = {}  # the K stages of a module meet the same ops on the same shapes
    for module, (label, args) in inputs.items():
        for name, op in nni_bridge.candidates(module.choice):
            key = (name, type(op), tuple(p.shape for p in op.parameters()), tuple(a.shape for a in args))
            if key not in seen:
                seen[key] = _cost(op, args, kind, repeats)
            costs.setdefault(label, {}).setdefault(name, 0.0)
            costs[label][name] += seen[key]
    order = {label: names for arch in arch_modules(net) for label, names in arch.candidates.items()}
    for gate, (present, _, inside) in gates.items():
        costs[gate] = {name: inside if name == present else 0.0 for name in order[gate]}
    unseen = sorted(set(order) - set(costs))
    if unseen:
        raise ConfigError(f"cost: the labels {unseen} were not reached by a forward pass at {w}x{h}")
    costs = {label: {op: costs[label][op] for op in order[label]} for label in order}
    # the counter saw every candidate of every edge once: what is left is the unsearched part
    fixed = total / 1e9 - sum(c for ops in costs.values() for c in ops.values()) if kind == "flops" else 0.0
    return CostTable(kind, size, costs, max(fixed, 0.0), {g: (p, labels) for g, (p, labels, _) in gates.items()})


def _gate_costs(net: nn.Module, covered: Mapping[nn.Module, tuple[str, tuple]],
                inputs: Mapping[nn.Module, tuple[str, tuple]], kind: CostKind) -> dict[str, tuple[str, tuple[str, ...], float]]:
    """presence label -> (present candidate, labels inside, cost of the unsearched part inside): the
    covered modules' FLOPs, each counted on its captured input, less their candidates' (0 for latency)."""
    out = {}
    for gate in (m for m in net.modules() if isinstance(m, MixedGate)):
        edges = [m for c in gate.covered for m in c.modules() if m in inputs]
        labels = tuple(dict.fromkeys(inputs[m][0] for m in edges))
        inside = 0.0
        if kind == "flops":
            inside = sum(count_flops(c, *covered[c][1]) for c in gate.covered) / 1e9
            inside -= sum(count_flops(op, *inputs[m][1]) / 1e9 for m in edges for _, op in nni_bridge.candidates(m.choice))
        out[gate.label] = (gate.names[gate.present], labels, max(inside, 0.0))
    return out


def _cost(op: nn.Module, args: tuple, kind: CostKind, repeats: int) -> float:
    if kind == "flops":
        return count_flops(op, *args) / 1e9
    return 1e3 * statistics.median(run_times(op, args, repeats, warmup=2))  # median ms


@contextlib.contextmanager
def _every_edge_called(net: nn.Module) -> Iterator[None]:
    """Unmerged, unjoined mixed edges for the measuring pass: each edge's forward runs, on its own
    input, and every candidate runs as itself (the counter then sees each one)."""
    saved = [(m, "join", m.join) for m in net.modules() if isinstance(m, Cell)]
    saved += [(m, "merge", m.merge) for m in net.modules() if isinstance(m, MixedEdge)]
    for m, attr, _ in saved:
        setattr(m, attr, False)
    try:
        yield
    finally:
        for m, attr, value in saved:
            setattr(m, attr, value)


@contextlib.contextmanager
def _captured(net: nn.Module, into: dict[nn.Module, tuple[str, tuple]]) -> Iterator[None]:
    """Record each mixed edge's or part's label and (detached) inputs of the first call."""
    def hook(module: nn.Module, args: tuple) -> None:
        if module not in into:
            into[module] = (module.label, tuple(a.detach() for a in args if torch.is_tensor(a)))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, (MixedEdge, MixedPart))]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _captured_covered(net: nn.Module, into: dict[nn.Module, tuple[str, tuple]]) -> Iterator[None]:
    """Record the (detached) inputs of the first call of each module a presence gate covers."""
    def hook(module: nn.Module, args: tuple) -> None:
        if module not in into:
            into[module] = ("", tuple(a.detach() for a in args if torch.is_tensor(a)))

    handles = [c.register_forward_pre_hook(hook) for g in net.modules() if isinstance(g, MixedGate) for c in g.covered]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def current_probs(net: nn.Module) -> dict[str, torch.Tensor]:
    """label -> the op probabilities of ``net``'s α now (detached)."""
    return {label: arch.prob(label, a.detach()) for arch in arch_modules(net) for label, a in arch.items()}


def describe(table: CostTable) -> str:
    return (f"{table.kind} at {table.size[0]}x{table.size[1]}: cheapest genotype {table.cheapest():.4g} "
            f"{UNITS[table.kind]}, fixed part {table.fixed:.4g}")


def from_csv(text: str, kind: CostKind) -> CostTable:
    """The table ``to_csv`` wrote (a resumed run reads it back rather than measuring again)."""
    rows = list(csv.reader(io.StringIO(text)))[1:]
    w, h = (int(v) for v in rows[0][3].split("x"))
    costs: dict[str, dict[str, float]] = {}
    gates: dict[str, tuple[str, tuple[str, ...]]] = {}
    for label, op, cost, _, *within in rows[1:]:
        costs.setdefault(label, {})[op] = float(cost)
        if within and within[0]:
            gate, present = within[0].rsplit(":", 1)
            labels = gates.get(gate, (present, ()))[1]
            gates[gate] = (present, labels if label in labels else labels + (label,))
    return CostTable(kind, (w, h), costs, float(rows[0][2]), gates)


def draw_under(table: CostTable, limit: float, labels: Mapping[str, Sequence[str]], generator: torch.Generator,
               tries: int = 10_000) -> dict[str, str]:
    """A genotype drawn uniformly among those of ``labels`` costing at most ``limit`` (rejection
    sampling: the uniform draw, redrawn while over the limit)."""
    if limit < table.cheapest():
        raise ConfigError(f"search.cost.limit={limit:g} {UNITS[table.kind]}: no genotype is that cheap; "
                          f"the cheapest costs {table.cheapest():.4g}")
    for _ in range(tries):
        choices = random_choices(labels, generator)
        if table.of(choices) <= limit:
            return choices
    raise ConfigError(f"search.cost.limit={limit:g} {UNITS[table.kind]}: none of {tries} uniform draws was under "
                      f"it (the cheapest genotype costs {table.cheapest():.4g}); raise the limit")
