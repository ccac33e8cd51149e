"""The cost term of the upper level (``search.cost``, docs/cost.md).

The cost table (``space.cost``) is measured once on the supernet when the search is built and kept
in the checkpoint, so a resumed run uses the same numbers (latency would differ when measured
again). Every level with α gets a ``CostPenalty``: weight · max(0, E[cost] / target - 1), a hinge
that is zero under the target, so the penalty asks for a cheaper network only when the expected
one is too dear and never rewards a skip for its own sake below it. E[cost] is over the whole
network: a level's own labels take the α its hypergradient passes, the other levels' their
current α (detached).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Mapping

import torch
from torch import nn

from nas_llv.remedies import CostConfig
from nas_llv.space.cost import UNITS, CostTable, current_weights, describe, measure
from nas_llv.space.genotype import Genotype

log = logging.getLogger(__name__)


class CostPenalty:
    """An ``UpperPenalty``: the hinge on the network's expected cost."""

    name = "cost"

    def __init__(self, table: CostTable, net: nn.Module, target: float, weight: float) -> None:
        self.table, self.net, self.target, self.weight = table, net, target, weight

    def __call__(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        expected = self.table.expected({**current_weights(self.net), **weights})
        return self.weight * torch.relu(expected / self.target - 1)


def cost_table(cfg: CostConfig | None, net: nn.Module) -> CostTable | None:
    """The supernet's cost table at ``cfg.size`` (None when ``search.cost`` is off)."""
    if cfg is None:
        return None
    table = measure(net, cfg.type, tuple(cfg.size))
    log.info("cost: %s", describe(table))
    if cfg.target is not None and cfg.target < table.cheapest():
        log.warning("cost: target %.4g %s is below the cheapest genotype's %.4g: the penalty cannot reach 0",
                    cfg.target, UNITS[cfg.type], table.cheapest())
    return table


def expected_cost(table: CostTable | None, net: nn.Module) -> dict[str, float]:
    """The trajectory's ``cost/expected`` column at ``net``'s α now (empty when there is no table)."""
    if table is None:
        return {}
    with torch.no_grad():
        return {"cost/expected": float(table.expected(current_weights(net)))}


def cost_meta(table: CostTable, genotype: Mapping[str, str]) -> dict[str, object]:
    """What a genotype's meta records of its cost: kind, unit, input size, value."""
    return {"type": table.kind, "unit": UNITS[table.kind], "size": f"{table.size[0]}x{table.size[1]}",
            "value": round(table.of(genotype), 6)}


def with_cost(table: CostTable | None, genotype: Genotype) -> Genotype:
    """``genotype`` with ``meta.cost`` of the choices it holds (unchanged when there is no table)."""
    if table is None:
        return genotype
    return dataclasses.replace(genotype, meta={**genotype.meta, "cost": cost_meta(table, genotype.choices)})
