"""The loss base class: one calling convention for every registered loss.

A loss is called as ``loss(out, batch)``: ``out`` is the model's output dict (``"t"``
illumination, ``"u"`` enhanced image, ``"x"`` final output, ``"illum"`` a predicted illumination
map, optionally ``"y"``) and ``batch`` the data batch (``"low"`` the low-light input, ``"high"``
the ground truth when the dataset is paired). It returns an UNWEIGHTED scalar; weighting belongs
to ``weighting.CompositeLoss``. Each loss names the keys it reads in ``needs`` and raises a
``ConfigError`` naming the missing one.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError, register_with_options
from nas_llv.registry import LOSSES

Tensors = Mapping[str, Any]

# What each key means, for error messages.
KEY_MEANING = {
    "t": "the illumination map t",
    "u": "the enhanced image u",
    "x": "the final output x",
    "y": "the low-light input (out['y'] or batch['low'])",
    "illum": "the predicted illumination attention map",
    "high": "ground truth",
}


# ``@register(name)``: the loss's options dataclass is made from its constructor's keywords, so a
# recipe checks them on loading; records the name on the class as ``loss_name`` (for messages)
register = partial(register_with_options, LOSSES)


def fetch(out: Tensors, batch: Tensors, key: str, loss_name: str = "loss") -> torch.Tensor:
    """The tensor ``key`` from the outputs, else the batch; ``"y"`` also reads ``batch['low']``.

    ``"high"`` (ground truth) is read from the batch only: a model never produces it.
    """
    if key == "high":
        if batch.get("high") is None:
            raise ConfigError(f"loss '{loss_name}' needs ground truth 'high'; the dataset is unpaired "
                              f"(the batch holds: {', '.join(sorted(batch)) or 'nothing'})")
        return batch["high"]
    for source in (out, batch):
        if source.get(key) is not None:
            return source[key]
    if key == "y" and batch.get("low") is not None:
        return batch["low"]
    meaning = KEY_MEANING.get(key, f"'{key}'")
    raise ConfigError(f"loss '{loss_name}' needs '{key}' ({meaning}), which neither the model outputs "
                      f"({', '.join(sorted(out)) or 'none'}) nor the batch ({', '.join(sorted(batch)) or 'none'}) hold")


def check_same_shape(name: str, a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise ConfigError(f"loss '{name}': {what} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_choice(name: str, option: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"loss '{name}': {option}={value!r} is not allowed; allowed: {', '.join(map(str, allowed))}")


def check_positive(name: str, option: str, value: float, allow_zero: bool = False) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"loss '{name}': {option} must be a number {bound}, got {value!r}")


class Loss(nn.Module):
    """Base class. Subclasses set ``needs`` and implement ``compute(*tensors)``.

    ``available`` is False when a loss cannot run here (e.g. missing pretrained weights and
    ``on_missing: drop``); a composite then leaves it out.
    """

    loss_name: str = "loss"
    needs: tuple[str, ...] = ()
    available: bool = True

    def forward(self, out: Tensors, batch: Tensors) -> torch.Tensor:
        if not self.available:
            raise ConfigError(f"loss '{self.loss_name}' is unavailable here ({self.unavailable_reason()}); "
                              "leave it out of the recipe or let a composite loss drop it")
        tensors = [fetch(out, batch, k, self.loss_name) for k in self.needs]
        # losses run in float32 outside autocast (speed.amp): reductions and ratios such as RTV's
        # need the precision, and CPU bf16 has no fast depthwise convolution (its Gaussian windows)
        with torch.autocast(tensors[0].device.type if tensors else "cpu", enabled=False):
            return self.compute(*(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in tensors))

    def compute(self, *tensors: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def unavailable_reason(self) -> str:
        return "no reason given"

    def trained_parameters(self) -> list[nn.Parameter]:
        """Weights of the loss's own that retraining trains with the network's, by its optimizer
        (``sci_calibration``'s calibration module); none by default."""
        return []

    def extra_repr(self) -> str:
        return f"needs={self.needs}"
