"""Cooperative search of the scene module and a high-level task head (RUAS TPAMI Sec. 4.1, Alg. 1).

The network is ``ruas_highlevel`` (``nas_llv.space.models.highlevel``): ``net.scene`` and
``net.head``, the head predicting a task map from the enhanced image u. Per iteration, as Alg. 1:
α_s with the upper loss L^s_val + β·L^t_val (the head runs on the scene's output, so the task loss
reaches α_s through u), then ω_s with the scene loss alone (Eq. 8); then α_t and ω_t of the head
on the new scene's output, detached. Losses: ``losses.scene`` (e.g. ruas_scene) and
``losses.task`` (e.g. edge), which reads the head's outputs (``task_outputs``: 'edge_logits',
'edges') and the batch's ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nas_llv.config import ConfigError, check_range
from nas_llv.registry import STRATEGIES
from nas_llv.search.level import Level
from nas_llv.search.strategies.ruas import SceneLevel, TaskLevel
from nas_llv.search.strategy import Losses, Strategy


def _task_outputs(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    from nas_llv.space.models.highlevel import task_outputs  # on use: the strategies' import stays light

    return task_outputs(logits)


@dataclass(frozen=True)
class CooperativeHighLevelConfig:
    """Options of strategy ``cooperative_highlevel``."""

    beta: float = 1.0                    # weight of the task loss in the scene's upper loss (Eq. 7)
    scene_steps: int = 1                 # scene updates per iteration
    head_steps: int = 1                  # task-head updates per iteration

    def validate(self) -> None:
        check_range("beta", self.beta, 0.0)
        for name in ("scene_steps", "head_steps"):
            check_range(name, getattr(self, name), 1)


@STRATEGIES.register("cooperative_highlevel", config=CooperativeHighLevelConfig)
class CooperativeHighLevel(Strategy):
    """RUAS Alg. 1 for a high-level task: scene_steps updates of (α_s, ω_s), then head_steps of
    (α_t, ω_t), per iteration; levels ``scene`` and ``head``."""

    needs = ("scene", "task")

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        if not hasattr(net, "scene") or not hasattr(net, "head"):
            raise ConfigError(f"strategy 'cooperative_highlevel' searches the network ruas_highlevel (a scene "
                              f"module and a task head), not {type(net).__name__}; use network.type: ruas_highlevel")
        task = losses("task")
        return {"scene": SceneLevel(net, losses("scene"), task, self.opts.beta, task=net.head,
                                    task_outputs=_task_outputs),
                "head": TaskLevel(net, task, task=net.head, task_outputs=_task_outputs, name="head")}

    def schedule(self, epoch: int) -> list[str]:
        return ["scene"] * self.opts.scene_steps + ["head"] * self.opts.head_steps
