"""Model cost: parameter count, FLOPs (torch's FlopCounterMode) and wall-clock latency."""
from __future__ import annotations

import contextlib
import platform
import statistics
import time
from typing import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nas_llv.device import resolve_device


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Every module and submodule in eval mode inside (measuring or validating must not update
    BatchNorm statistics); after, each back in the mode it had, so a submodule its owner keeps in
    eval mode (a loss's fixed VGG or discriminator) stays so."""
    modes = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def count_flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``inputs``, as ``torch.utils.flop_counter`` counts them.

    That counter counts 2 FLOPs per multiply-add of convolutions and matrix products and nothing
    for biases, activations, pooling or element-wise ops; so GMACs = FLOPs / 2 / 1e9 (papers that
    write "FLOPs" often mean MACs). Runs in eval mode without gradients; the model's mode is restored.
    """
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(*inputs)
    return int(counter.get_total_flops())


def _resolve_device(device: str | torch.device | None, x: torch.Tensor) -> torch.device:
    return x.device if device is None else resolve_device(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or device.type


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_times(model: nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int, warmup: int) -> list[float]:
    """Seconds of each of ``repeats`` calls ``model(*inputs)`` after ``warmup`` untimed ones, in eval mode
    under ``torch.inference_mode``, on the inputs' device (bracketed by a synchronize on CUDA)."""
    dev = inputs[0].device
    times = []
    with eval_mode(model), torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(dev)
            start = time.perf_counter()
            model(*inputs)
            _sync(dev)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def latency(
    model: nn.Module,
    x: torch.Tensor,
    repeats: int = 20,
    warmup: int = 3,
    device: str | torch.device | None = None,
) -> dict[str, float | int | str]:
    """Wall-clock time of ``model(x)`` in eval mode under ``torch.inference_mode``.

    device: None follows ``x``; ``"auto"`` picks CUDA when present; else a torch device. The model
    is moved there (in place) and x copied there. On CUDA each run is bracketed by
    ``torch.cuda.synchronize``. Returns ``{"median_s", "min_s", "repeats", "device_name"}``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"latency: need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    dev = _resolve_device(device, x)
    model.to(dev)
    times = run_times(model, (x.to(dev),), repeats, warmup)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "repeats": repeats,
        "device_name": _device_name(dev),
    }
