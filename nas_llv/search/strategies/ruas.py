"""RUAS search levels and the three strategies of Table 4: cooperative, global, independent.

Cooperative (Alg. 1, Eq. 6-8): α_s is updated with the upper loss L^s_val + β·L^t_val, where the
task module runs on the scene's output so the task loss reaches α_s through u; the scene's
training loss is the scene loss alone (Eq. 8). Then α_t is updated given the new α_s. During the
search the denoiser always runs (the RUAS_A gate belongs to the derived network only).

The network is RUAS (``nas_llv.space.models.networks``): ``net.scene``, and ``net.denoise``
(None for variant ruas_s). Losses: ``losses.scene``, and ``losses.task`` with a denoiser.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError, check_range
from nas_llv.registry import STRATEGIES
from nas_llv.search.level import Batch, Level, LossClosure, arch_parameters, call, named, weight_parameters
from nas_llv.search.strategy import Losses, Strategy


def _prefixed(prefix: str, terms: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in terms.items()}


class _ModuleLevel(Level):
    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        self.upper = named(module, arch_parameters(module))
        self.lower = named(module, weight_parameters(module))


def image_output(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What a task loss reads from an image-restoring task module: its output as the image 'x'."""
    return {"x": x}


TaskOutputs = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


class SceneLevel(_ModuleLevel):
    """α_s / ω_s. Upper objective adds β·(task loss on the scene's output) when a task module exists.

    ``task`` is the task module on the scene's output (default: ``net.denoise``, RUAS's denoiser;
    a high-level head for ``cooperative_highlevel``); ``task_outputs`` turns its output into what
    the task loss reads."""

    def __init__(self, net: nn.Module, scene_loss: nn.Module, task_loss: nn.Module | None, beta: float, *,
                 task: nn.Module | None = None, task_outputs: TaskOutputs = image_output) -> None:
        super().__init__("scene", net.scene)
        self.task = getattr(net, "denoise", None) if task is None else task
        self.scene_loss, self.task_loss, self.beta, self.task_outputs = scene_loss, task_loss, beta, task_outputs

    def objective(self, batch: Batch, train: bool) -> LossClosure:
        def f(ov):
            out = call(self.module, ov, batch["low"])
            total, terms = self.scene_loss(out, batch)
            terms = _prefixed("scene", terms)
            if not train and self.task is not None and self.beta > 0:
                x = self.fixed_call(self.task, out["u"])  # the task's α and ω are not this level's
                t_total, t_terms = self.task_loss({**self.task_outputs(x), "u": out["u"]}, batch)
                total, terms = total + self.beta * t_total, {**terms, **_prefixed("task", t_terms)}
            return total, terms
        return f


class TaskLevel(_ModuleLevel):
    """α_t / ω_t of a task module (default: ``net.denoise``) on the current scene module's output
    (the scene is not updated here); the level is called ``name``."""

    def __init__(self, net: nn.Module, task_loss: nn.Module, *, task: nn.Module | None = None,
                 task_outputs: TaskOutputs = image_output, name: str = "task") -> None:
        super().__init__(name, net.denoise if task is None else task)
        self.scene, self.task_loss, self.task_outputs = net.scene, task_loss, task_outputs

    def objective(self, batch: Batch, train: bool) -> LossClosure:
        with torch.no_grad():
            u = self.scene(batch["low"])["u"]

        def f(ov):
            total, terms = self.task_loss({**self.task_outputs(call(self.module, ov, u)), "u": u}, batch)
            return total, _prefixed("task", terms)
        return f


class JointLevel(_ModuleLevel):
    """The 'global' baseline: SM and TM as one network with one α, loss ℓ_s + β·ℓ_t end to end."""

    def __init__(self, net: nn.Module, scene_loss: nn.Module, task_loss: nn.Module | None, beta: float) -> None:
        super().__init__("all", net)
        self.scene_loss, self.task_loss, self.beta = scene_loss, task_loss, beta

    def objective(self, batch: Batch, train: bool) -> LossClosure:
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


@dataclass(frozen=True)
class CooperativeConfig:
    """Options of strategy ``cooperative``."""

    beta: float = 1.0                    # weight of the task loss in the scene's upper loss (Eq. 7)
    scene_steps: int = 1                 # scene updates per iteration
    task_steps: int = 1                  # task updates per iteration

    def validate(self) -> None:
        check_range("beta", self.beta, 0.0)
        for name in ("scene_steps", "task_steps"):
            check_range(name, getattr(self, name), 1)


@dataclass(frozen=True)
class GlobalConfig:
    """Options of strategy ``global``."""

    beta: float = 1.0                    # weight of the task loss in the joint loss ℓ_s + β·ℓ_t

    def validate(self) -> None:
        check_range("beta", self.beta, 0.0)


class _RUASStrategy(Strategy):
    """A strategy on the RUAS network: the task loss only where the network has a denoiser."""

    def needed_losses(self, net: nn.Module) -> list[str]:
        return ["scene", "task"] if getattr(net, "denoise", None) is not None else ["scene"]

    def _losses(self, net: nn.Module, losses: Losses) -> tuple[nn.Module, nn.Module | None]:
        """(scene loss, task loss or None); checks that ``net`` is the RUAS network."""
        scene = losses("scene")
        if not hasattr(net, "scene") or not hasattr(net, "denoise"):
            raise ConfigError(f"strategy '{self.cfg.strategy}' searches the RUAS network (network.type: ruas), "
                              f"not {type(net).__name__}; for other networks use strategy hyper")
        task = losses("task") if net.denoise is not None else None
        return scene, task


@STRATEGIES.register("cooperative", config=CooperativeConfig)
class Cooperative(_RUASStrategy):
    """RUAS Alg. 1: scene_steps updates of (α_s, ω_s), then task_steps of (α_t, ω_t), per iteration."""

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        scene_loss, task_loss = self._losses(net, losses)
        levels: dict[str, Level] = {"scene": SceneLevel(net, scene_loss, task_loss, self.opts.beta)}
        if task_loss is not None:
            levels["task"] = TaskLevel(net, task_loss)
        self.has_task = task_loss is not None
        return levels

    def schedule(self, epoch: int) -> list[str]:
        plan = ["scene"] * self.opts.scene_steps
        return plan + ["task"] * self.opts.task_steps if self.has_task else plan


@STRATEGIES.register("global", config=GlobalConfig)
class Global(_RUASStrategy):
    """Baseline: one supernet, one α over both modules, searched end to end."""

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        return {"all": JointLevel(net, *self._losses(net, losses), self.opts.beta)}

    def schedule(self, epoch: int) -> list[str]:
        return ["all"]


@STRATEGIES.register("independent")
class Independent(_RUASStrategy):
    """Baseline: the first ceil(epochs/2) epochs search the scene alone (β = 0, by definition: no
    options), the rest the task module on the frozen scene."""

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        scene_loss, task_loss = self._losses(net, losses)
        if task_loss is None:
            raise ConfigError("strategy 'independent' needs a task module (network variant ruas or ruas_a)")
        return {"scene": SceneLevel(net, scene_loss, None, 0.0), "task": TaskLevel(net, task_loss)}

    def schedule(self, epoch: int) -> list[str]:
        return ["scene"] if epoch < math.ceil(self.cfg.epochs / 2) else ["task"]
