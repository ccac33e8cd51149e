"""DARTS- (Chu et al., ICLR 2021, "DARTS-: Robustly Stepping out of Performance Collapse Without
Indicators"): an auxiliary skip connection on every mixed edge, y = Σ_i w_i op_i(x) + β·x, with β
decaying linearly from ``search.aux_skip.weight`` to 0 over the search. The skip takes over the
unfair advantage of the candidate skip op, so α stops drifting towards it; it belongs to the
search only (``MixedEdge.aux_skip``): genotypes and derived networks never hold it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas_llv.config import check_range
from nas_llv.search.extensions.base import Extension, Search, register
from nas_llv.space.supernet import MixedEdge, set_all


@dataclass(frozen=True)
class AuxSkipConfig:
    """DARTS- (Chu et al. 2021): an auxiliary skip β·x on every mixed edge, β decaying to 0."""

    weight: float = 1.0      # β at the first epoch (paper: 1)

    def validate(self) -> None:
        check_range("weight", self.weight, 0.0, lo_open=True)


def aux_weight(cfg: AuxSkipConfig, epoch: int, epochs: int) -> float:
    """β in 0-based ``epoch`` of ``epochs``: weight · (1 - epoch / epochs), in [0, weight].

    Stepped per epoch, as the authors' code steps its linear decay scheduler (β = 1 in the first
    epoch, 1/epochs in the last); 0 once the search is over."""
    return cfg.weight * max(0.0, 1.0 - epoch / epochs)


def apply_aux_skip(net: nn.Module, cfg: AuxSkipConfig | None, epoch: int, epochs: int) -> None:
    """Set every mixed edge's auxiliary skip weight for ``epoch`` (nothing when ``cfg`` is None).

    β is one 0-d float64 tensor shared by the edges and filled in place: a compiled forward takes it
    as an input, so a new β recompiles nothing, and float64 holds the Python float exactly, so the
    arithmetic is a float's (docs/speed.md)."""
    if cfg is None:
        return
    edges = [m for m in net.modules() if isinstance(m, MixedEdge)]
    beta = next((e.aux_skip for e in edges if torch.is_tensor(e.aux_skip)), None)
    beta = torch.zeros((), dtype=torch.float64) if beta is None else beta
    beta.fill_(aux_weight(cfg, epoch, epochs))
    set_all(net, MixedEdge, aux_skip=beta)


@register("aux_skip", AuxSkipConfig)
class AuxSkip(Extension):
    """DARTS-: a decaying auxiliary skip β·x beside every mixed edge (docs/remedies.md).

    β is set on the edges before each iteration, from its epoch."""

    order = 30

    def setup(self, search: Search) -> None:
        self.net, self.epochs = search.net, search.recipe.search.epochs

    def attach(self, search: Search) -> None:
        # β a tensor from the start: the preflight's forward without grad (a compiled graph the
        # validation reuses) sees the tensor each iteration fills, not the edges' float 0.0
        apply_aux_skip(self.net, self.options, 0, self.epochs)

    def before_iteration(self, epoch: int) -> None:
        apply_aux_skip(self.net, self.options, epoch, self.epochs)
