"""RUAS search levels and the three strategies of Table 4: cooperative, global, independent.

Cooperative (Alg. 1, Eq. 6-8): α_s is updated with the upper loss L^s_val + β·L^t_val, where the
task module runs on the scene's output so the task loss reaches α_s through u; the scene's
training loss is the scene loss alone (Eq. 8). Then α_t is updated given the new α_s. During the
search the denoiser always runs (the RUAS_A gate belongs to the derived network only).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.registry import STRATEGIES
from nas_llv.space.supernet import arch_parameters, weight_parameters
from nas_llv.search.level import Batch, Level, Objective, call, named
from nas_llv.search.loop import Searcher


def _prefixed(prefix: str, terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in terms.items()}


class _ModuleLevel(Level):
    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        self.upper = named(module, arch_parameters(module))
        self.lower = named(module, weight_parameters(module))


class SceneLevel(_ModuleLevel):
    """α_s / ω_s. Upper objective adds β·(task loss on the scene's output) when a task module exists."""

    def __init__(self, net: nn.Module, scene_loss: nn.Module, task_loss: nn.Module | None, beta: float) -> None:
        super().__init__("scene", net.scene)
        self.denoise, self.scene_loss, self.task_loss, self.beta = net.denoise, scene_loss, task_loss, beta

    def objective(self, batch: Batch, train: bool) -> Objective:
        def f(ov):
            out = call(self.module, ov, batch["low"])
            total, terms = self.scene_loss(out, batch)
            terms = _prefixed("scene", terms)
            if not train and self.denoise is not None and self.beta > 0:
                t_total, t_terms = self.task_loss({"x": self.denoise(out["u"]), "u": out["u"]}, batch)
                total, terms = total + self.beta * t_total, {**terms, **_prefixed("task", t_terms)}
            return total, terms
        return f


class TaskLevel(_ModuleLevel):
    """α_t / ω_t on the current scene module's output (the scene is not updated here)."""

    def __init__(self, net: nn.Module, task_loss: nn.Module) -> None:
        super().__init__("task", net.denoise)
        self.scene, self.task_loss = net.scene, task_loss

    def objective(self, batch: Batch, train: bool) -> Objective:
        with torch.no_grad():
            u = self.scene(batch["low"])["u"]

        def f(ov):
            total, terms = self.task_loss({"x": call(self.module, ov, u), "u": u}, batch)
            return total, _prefixed("task", terms)
        return f


class JointLevel(_ModuleLevel):
    """The 'global' baseline: SM and TM as one network with one α, loss ℓ_s + β·ℓ_t end to end."""

    def __init__(self, net: nn.Module, scene_loss: nn.Module, task_loss: nn.Module | None, beta: float) -> None:
        super().__init__("all", net)
        self.scene_loss, self.task_loss, self.beta = scene_loss, task_loss, beta

    def objective(self, batch: Batch, train: bool) -> Objective:
        def f(ov):
            out = call(self.module.scene, _sub(ov, "scene."), batch["low"])
            total, terms = self.scene_loss(out, batch)
            terms = _prefixed("scene", terms)
            if self.module.denoise is not None:
                x = call(self.module.denoise, _sub(ov, "denoise."), out["u"])
                t_total, t_terms = self.task_loss({"x": x, "u": out["u"]}, batch)
                total, terms = total + self.beta * t_total, {**terms, **_prefixed("task", t_terms)}
            return total, terms
        return f


def _sub(ov: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in ov.items() if k.startswith(prefix)}


class _RUASSearch(Searcher):
    def _losses(self) -> tuple[nn.Module, nn.Module | None]:
        scene = self.loss("scene")
        task = self.loss("task") if self.net.denoise is not None else None
        return scene, task


@STRATEGIES.register("cooperative")
class Cooperative(_RUASSearch):
    """RUAS Alg. 1: scene_steps updates of (α_s, ω_s), then task_steps of (α_t, ω_t), per iteration."""

    def build_levels(self) -> dict[str, Level]:
        scene_loss, task_loss = self._losses()
        levels: dict[str, Level] = {"scene": SceneLevel(self.net, scene_loss, task_loss, self.cfg.beta)}
        if task_loss is not None:
            levels["task"] = TaskLevel(self.net, task_loss)
        return levels

    def schedule(self, epoch: int) -> list[str]:
        plan = ["scene"] * self.cfg.scene_steps
        return plan + ["task"] * self.cfg.task_steps if "task" in self.levels else plan


@STRATEGIES.register("global")
class Global(_RUASSearch):
    """Baseline: one supernet, one α over both modules, searched end to end."""

    def build_levels(self) -> dict[str, Level]:
        return {"all": JointLevel(self.net, *self._losses(), self.cfg.beta)}

    def schedule(self, epoch: int) -> list[str]:
        return ["all"]


@STRATEGIES.register("independent")
class Independent(Cooperative):
    """Baseline: the first ceil(epochs/2) epochs search the scene alone (β = 0), the rest the task
    module on the frozen scene."""

    def build_levels(self) -> dict[str, Level]:
        scene_loss, task_loss = self._losses()
        if task_loss is None:
            raise ConfigError("strategy 'independent' needs a task module (network variant ruas or ruas_a)")
        return {"scene": SceneLevel(self.net, scene_loss, None, 0.0), "task": TaskLevel(self.net, task_loss)}

    def schedule(self, epoch: int) -> list[str]:
        return ["scene"] if epoch < math.ceil(self.cfg.epochs / 2) else ["task"]
