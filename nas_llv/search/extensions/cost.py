"""The cost term of the upper level: the extension ``search.cost`` (docs/cost.md), its options and
everything it does; what a candidate op costs is the space's cost table (``space/cost.py``).

The cost table is measured once on the supernet when the search is built (before the levels, so
strategy random draws its candidates under ``limit``), written to the run's ``cost_table.csv``,
and kept in the checkpoint, so a resumed run uses the same numbers (latency would differ when
measured again). The trajectory's ``cost/expected`` column is E[cost] at each row's α, and every
genotype's meta its cost. With a ``target``, every level with α gets a ``CostPenalty``:
weight · max(0, E[cost] / target - 1), a hinge
that is zero under the target, so the penalty asks for a cheaper network only when the expected
one is too dear and never rewards a skip for its own sake below it. E[cost] is over the whole
network: a level's own labels take the α its hypergradient passes, the other levels' their
current α (detached).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Mapping

import torch
from torch import nn

from nas_llv.atomic import write_text
from nas_llv.config import check_range
from nas_llv.reference import REFERENCE_SIZE
from nas_llv.search.extensions.base import Extension, Search, register
from nas_llv.search.level import Batch, Level, Scalar, attach_penalty
from nas_llv.space.genotype import Genotype

if TYPE_CHECKING:
    from nas_llv.space.cost import CostTable

# The space's cost table (``space/cost.py``) is imported on use: it brings the metrics, which a
# recipe's checks (that import every extension to read its options) need not load.

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CostConfig:
    """A cost-aware upper level (ProxylessNAS, Cai et al. 2019; FBNet, Wu et al. 2019): the expected
    cost E[cost] = Σ_edges Σ_ops w(op)·cost(op) is tracked, and above ``target`` the upper loss gets
    ``weight`` · max(0, E[cost] / target - 1); ``limit`` is a hard cap on a random candidate's cost."""

    type: Literal["flops", "latency"] = "flops"   # GFLOPs of the whole network, or ms of the searched ops
    size: tuple[int, int] = REFERENCE_SIZE   # input width x height the cost is measured at
    target: float | None = None          # GFLOPs or ms; null: track E[cost] only, no penalty
    weight: float = 1.0                  # of the hinge above target
    limit: float | None = None           # random search draws only candidates costing at most this

    def validate(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size={list(self.size)}: expected [width, height], each >= 1")
        for name in ("target", "limit"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 0.0, lo_open=True)
        check_range("weight", self.weight, 0.0)


class CostPenalty:
    """An ``UpperPenalty``: the hinge on the network's expected cost."""

    name = "cost"

    def __init__(self, table: CostTable, net: nn.Module, target: float, weight: float) -> None:
        self.table, self.net, self.target, self.weight = table, net, target, weight

    def __call__(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        from nas_llv.space.cost import current_probs

        expected = self.table.expected({**current_probs(self.net), **probs})
        return self.weight * torch.relu(expected / self.target - 1)


def cost_table(cfg: CostConfig, net: nn.Module) -> CostTable:
    """The supernet's cost table at ``cfg.size``."""
    from nas_llv.space.cost import UNITS, describe, measure

    table = measure(net, cfg.type, tuple(cfg.size))
    log.info("cost: %s", describe(table))
    if cfg.target is not None and cfg.target < table.cheapest():
        log.warning("cost: target %.4g %s is below the cheapest genotype's %.4g: the penalty cannot reach 0",
                    cfg.target, UNITS[cfg.type], table.cheapest())
    return table


def expected_cost(table: CostTable, net: nn.Module) -> dict[str, torch.Tensor]:
    """The trajectory's ``cost/expected`` column at ``net``'s α now (0-dim, on the device)."""
    from nas_llv.space.cost import current_probs

    with torch.no_grad():
        return {"cost/expected": table.expected(current_probs(net)).detach()}


def cost_meta(table: CostTable, genotype: Mapping[str, str]) -> dict[str, object]:
    """What a genotype's meta records of its cost: kind, unit, input size, value."""
    from nas_llv.space.cost import UNITS

    return {"type": table.kind, "unit": UNITS[table.kind], "size": f"{table.size[0]}x{table.size[1]}",
            "value": round(table.of(genotype), 6)}


def with_cost(table: CostTable, genotype: Genotype) -> Genotype:
    """``genotype`` with ``meta.cost`` of the choices it holds."""
    return dataclasses.replace(genotype, meta={**genotype.meta, "cost": cost_meta(table, genotype.choices)})


@register("cost", CostConfig)
class Cost(Extension):
    """The supernet's expected FLOPs or latency tracked, and a hinge on it above target (docs/cost.md)."""

    order = 50
    state_key = "cost_table"  # the table as CSV text: the numbers the run started with

    @classmethod
    def check(cls, options: CostConfig, search: Any) -> None:
        """``target`` acts on learned α, ``limit`` on drawn candidates: each only where it can."""
        drawn = search.kind == "multi_trial"
        if options.limit is not None and not drawn:
            raise ValueError(f"cost.limit={options.limit:g} applies to strategy {search.strategies_of('multi_trial')} "
                             f"(its candidates are drawn under it); a gradient search takes cost.target, the hinge "
                             f"on the expected cost")
        if options.target is not None and drawn:
            raise ValueError(f"cost.target={options.target:g} does not apply to strategy {search.strategy}: its α is "
                             f"drawn, not learned; use cost.limit")

    def setup(self, search: Search) -> None:
        self.net, self.table = search.net, cost_table(self.options, search.net)
        search.strategy.cost_table = self.table  # a multi-trial strategy draws under ``limit`` with it

    def attach(self, search: Search) -> None:
        if self.options.target is not None:
            attach_penalty(search.levels, CostPenalty(self.table, self.net, self.options.target, self.options.weight))

    def attach_run(self, run: Any) -> None:
        """A new run gets its ``cost_table.csv`` now, so a stopped run has it too (a resumed one keeps
        the file it started with, as its checkpoint keeps the numbers)."""
        path = run.dir / "cost_table.csv"
        if run.writes and not path.exists():
            write_text(path, self.table.to_csv())

    def columns(self, name: str, level: Level, batch: Batch) -> dict[str, Scalar]:
        return expected_cost(self.table, self.net)

    def describe(self, genotype: Genotype) -> Genotype:
        return with_cost(self.table, genotype)

    def state_dict(self) -> str:
        return self.table.to_csv()

    def load_state_dict(self, state: str | None) -> None:
        if state:  # the numbers the run started with
            self.table.load(state)
