"""Optimizers and learning-rate schedules: their config (``OptimConfig``, a recipe's ``weights:``,
``arch:``, ``train.optim`` ...) and builders, for search and retraining alike."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nas_llv.config import check_range

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 3e-4
    momentum: float = 0.9                       # sgd
    betas: tuple[float, float] = (0.9, 0.999)   # adam
    weight_decay: float = 0.0
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr: float = 0.0
    grad_clip: float | None = 5.0

    def validate(self) -> None:
        check_range("lr", self.lr, 0.0, None, lo_open=True)
        check_range("weight_decay", self.weight_decay, 0.0)
        check_range("min_lr", self.min_lr, 0.0, self.lr)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas={list(self.betas)} must be two numbers in [0, 1)")


def make_optimizer(cfg: Any, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam or SGD from an OptimConfig."""
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_scheduler(cfg: Any, opt: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch, so the lr the optimizer uses (and ξ of unrolling) follows it."""
    import torch

    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.min_lr)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


class SchedulerGroup:
    """Several lr schedules stepped, saved and restored as one (the parts of a composite optimizer)."""

    def __init__(self, parts: dict[str, Any]) -> None:
        self.parts = parts

    def step(self) -> None:
        for sched in self.parts.values():
            sched.step()

    def state_dict(self) -> dict[str, Any]:
        return {k: s.state_dict() for k, s in self.parts.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, sched in self.parts.items():
            sched.load_state_dict(state[k])
