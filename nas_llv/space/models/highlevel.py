"""RUAS for high-level vision (TPAMI Sec. 4.1, 5.2): the scene module, then a dense-prediction
head whose task cell is searched from the ``ruas_highlevel`` space.

The paper searches the task cell in the neck/head of a face detector (DARK FACE); nas-llv ships a
stand-in that runs on a CPU with no download: the head predicts the edge map of the normal-light
image (``losses.task.EdgeLoss``) from the enhanced image u. See docs/highlevel.md.

The head is a 3x3 stem from the image to the cell's width C, the searched cells (the space's
``cell_stack``: C -> C), and a 3x3 predictor from C to ``task_channels`` maps (logits).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError, check_range
from nas_llv.registry import NETWORKS
from nas_llv.space.spec import SpaceSpec

Make = Callable[[str, str], nn.Module]
# module -> the model its space must declare
HIGHLEVEL_MODELS = {"scene": "ruas_scene", "head": "cell_stack"}


class TaskHead(nn.Module):
    """stem (3x3, image -> C), the searched cells (C -> C), predictor (3x3, C -> ``out_channels``).

    u: (N, 3, H, W) in [0, 1] -> logits (N, out_channels, H, W).
    """

    def __init__(self, cells: nn.Module, channels: int, out_channels: int = 1, image_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(image_channels, channels, 3, padding=1)
        self.cells = cells
        self.act = nn.ReLU()
        self.predict = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.predict(self.act(self.cells(self.act(self.stem(u)))))


def task_outputs(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """The head's outputs: 'edge_logits' (N, K, H, W), and 'edges', sigmoid of the first map in
    [0, 1] repeated over 3 channels (N, 3, H, W), so that it is saved and viewed as an image."""
    return {"edge_logits": logits, "edges": torch.sigmoid(logits[:, :1]).expand(-1, 3, -1, -1)}


class RUASHighLevel(nn.Module):
    """Scene module, then the task head on the enhanced image.

    y: (N, 3, H, W) in [0, 1] -> the scene outputs ('u', 't', 'us', 'ts') plus 'x' = u (the
    enhanced image: what ``eval`` scores and ``enhance`` writes) and the head's 'edge_logits'
    and 'edges' (``task_outputs``).

    Retraining hooks (``nas_llv.retrain.trainer.TrainingObjective``), as on ``RUAS``: the entry ``scene``
    trains the scene module, ``task`` the head on the scene's output *detached*.
    """

    objective_modules = {"scene": "scene", "task": "head"}
    full_output_keys = frozenset({"x", "edge_logits", "edges"})
    own_output_entries = frozenset({"task"})
    illumination_modules: tuple[str, ...] = ("scene",)

    def __init__(self, scene: nn.Module, head: TaskHead) -> None:
        super().__init__()
        self.scene, self.head = scene, head

    def forward(self, y: torch.Tensor) -> dict[str, Any]:
        out = self.scene(y)
        out["x"] = out["u"]
        out.update(task_outputs(self.head(out["u"])))
        return out

    def entry_outputs(self, entry: str, out: Mapping[str, Any],
                      batch: Mapping[str, Any] | None = None) -> dict[str, torch.Tensor]:
        """What ``task`` sees: the head on the detached enhanced image (it trains the head only).
        ``batch`` is not read (the hook's signature)."""
        u = out["u"].detach()
        return {**task_outputs(self.head(u)), "u": u}

    def partial_forward(self, y: torch.Tensor) -> dict[str, Any]:
        """The scene module's outputs alone (no 'x' and no head outputs)."""
        return self.scene(y)


@dataclass(frozen=True)
class HighLevelOptions:
    """``network.options`` of ``ruas_highlevel``: how many maps the head predicts (1: an edge map)."""

    task_channels: int = 1

    def validate(self) -> None:
        check_range("task_channels", self.task_channels, 1)


@NETWORKS.register("ruas_highlevel", config=HighLevelOptions)
def ruas_highlevel(spaces: Mapping[str, SpaceSpec], make: Make, task_channels: int = 1) -> RUASHighLevel:
    """Modules ``scene`` (a ``ruas_scene`` space) and ``head`` (a ``cell_stack`` space such as
    ``ruas_highlevel``); labels ``scene.*`` and ``head.*``."""
    missing = [k for k in HIGHLEVEL_MODELS if k not in spaces]
    extra = [k for k in spaces if k not in HIGHLEVEL_MODELS]
    if missing or extra:
        raise ConfigError(f"network ruas_highlevel needs spaces {list(HIGHLEVEL_MODELS)}; "
                          f"missing {missing}, unknown {extra}")
    for name, model in HIGHLEVEL_MODELS.items():
        kind = spaces[name].model.get("type")
        if kind != model:
            raise ConfigError(f"network ruas_highlevel: module '{name}' needs a space with model type {model}, "
                              f"but space '{spaces[name].name}' has model type {kind}")
    if task_channels < 1:
        raise ConfigError(f"network ruas_highlevel: task_channels must be >= 1, got {task_channels}")
    head = TaskHead(make("head", "head."), spaces["head"].cell.channels, task_channels)
    return RUASHighLevel(make("scene", "scene."), head)
