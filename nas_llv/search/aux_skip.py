"""DARTS- (Chu et al., ICLR 2021, "DARTS-: Robustly Stepping out of Performance Collapse Without
Indicators"): an auxiliary skip connection on every mixed edge, y = Σ_i w_i op_i(x) + β·x, with β
decaying linearly from ``search.aux_skip.weight`` to 0 over the search. The skip takes over the
unfair advantage of the candidate skip op, so α stops drifting towards it; it belongs to the
search only (``MixedEdge.aux_skip``): genotypes and derived networks never hold it.
"""
from __future__ import annotations

from torch import nn

from nas_llv.remedies import AuxSkipConfig
from nas_llv.space.supernet import MixedEdge, set_all


def aux_weight(cfg: AuxSkipConfig, epoch: int, epochs: int) -> float:
    """β in 0-based ``epoch`` of ``epochs``: weight · (1 - epoch / epochs), in [0, weight].

    Stepped per epoch, as the authors' code steps its linear decay scheduler (β = 1 in the first
    epoch, 1/epochs in the last); 0 once the search is over."""
    return cfg.weight * max(0.0, 1.0 - epoch / epochs)


def apply_aux_skip(net: nn.Module, cfg: AuxSkipConfig | None, epoch: int, epochs: int) -> None:
    """Set every mixed edge's auxiliary skip weight for ``epoch`` (nothing when ``cfg`` is None)."""
    if cfg is not None:
        set_all(net, MixedEdge, aux_skip=aux_weight(cfg, epoch, epochs))
