"""Optimizers and learning-rate schedules from an ``OptimConfig`` (search and retraining alike)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def make_optimizer(cfg: Any, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """Adam or SGD from an OptimConfig."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_scheduler(cfg: Any, opt: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch, so the lr the optimizer uses (and ξ of unrolling) follows it."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=cfg.min_lr)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
