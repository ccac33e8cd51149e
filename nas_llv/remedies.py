"""Options of what a search can add to plain DARTS: the DARTS-collapse remedies
(docs/remedies.md) and the cost term (``search.cost``, docs/cost.md).

Each is one key of the ``search:`` section, null (the default) for off. The options live on the
ground floor, beside the recipe that holds them (the recipe may not import ``search/``); what
each remedy does lives in the module of ``search/`` named after its key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nas_llv.config import check_range


@dataclass(frozen=True)
class EarlyStopConfig:
    """DARTS-ES (Zela et al. 2020, Sec. 4.3): stop when mean(λ over the ``window`` epochs before the
    last ``window``) / mean(λ over the last ``window``) < ``ratio``, and keep the architecture of
    ``window`` epochs earlier."""

    window: int = 5          # k: epochs in each mean (paper: 5)
    ratio: float = 0.75      # stop below this ratio of the earlier mean to the later (paper: 0.75)

    def validate(self) -> None:
        check_range("window", self.window, 1)
        check_range("ratio", self.ratio, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class HessianConfig:
    """RobustDARTS (Zela et al. 2020): the dominant eigenvalue of ∇²_α L_val by power iteration."""

    every: int = 4           # arch steps of a level between two eigenvalues
    iters: int = 20          # power-iteration steps at most, one Hessian-vector product each
    tol: float = 1e-3        # stop earlier when the estimate moves by less than tol * |λ|
    early_stop: EarlyStopConfig | None = None

    def validate(self) -> None:
        check_range("every", self.every, 1)
        check_range("iters", self.iters, 1)
        check_range("tol", self.tol, 0.0)


@dataclass(frozen=True)
class PerturbConfig:
    """SDARTS-RS (Chen & Hsieh 2020): uniform noise in [-epsilon, epsilon] on α in each weight step."""

    epsilon: float = 0.03    # paper: 0.03

    def validate(self) -> None:
        check_range("epsilon", self.epsilon, 0.0)


@dataclass(frozen=True)
class AuxSkipConfig:
    """DARTS- (Chu et al. 2021): an auxiliary skip β·x on every mixed edge, β decaying to 0."""

    weight: float = 1.0      # β at the first epoch (paper: 1)

    def validate(self) -> None:
        check_range("weight", self.weight, 0.0, lo_open=True)


@dataclass(frozen=True)
class CostConfig:
    """A cost-aware upper level (ProxylessNAS, Cai et al. 2019; FBNet, Wu et al. 2019): the expected
    cost E[cost] = Σ_edges Σ_ops w(op)·cost(op) is tracked, and above ``target`` the upper loss gets
    ``weight`` · max(0, E[cost] / target - 1); ``limit`` is a hard cap on a random candidate's cost."""

    type: Literal["flops", "latency"] = "flops"   # GFLOPs of the whole network, or ms of the searched ops
    size: tuple[int, int] = (600, 400)   # input width x height the cost is measured at
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
