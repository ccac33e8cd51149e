"""Inference engines: how a model runs on images in ``enhance`` and ``eval``.

An engine turns a model file (or, for an engine that runs files of its own, such a file) into
the module that runs, on a device. Each engine is one module of ``nas_llv/inference/engines/``
registered in ``ENGINES`` (``nas_llv.registry``); adding one is adding a file there:

    @ENGINES.register("name")
    class MyEngine(Engine):
        \"\"\"One line for `nas-llv list`.\"\"\"
        def prepare(self, model, device): ...

Every engine gives the images the plain network gives, up to float rounding (tested over every
registered engine); ``eval`` reports the engine's latency and the model's params and FLOPs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.device import keep_freed_memory, resolve_device
from nas_llv.export.modelfile import find_model, load_model
from nas_llv.registry import ENGINES
from nas_llv.space.genotype import Genotype, genotype_scale


@dataclass
class Prepared:
    """A model made ready by an engine."""

    runner: nn.Module  # what runs: y (N, 3, H, W) in [0, 1] -> the network's outputs
    network: nn.Module | None  # the torch network, for params and FLOPs; None when the engine ran a file of its own
    genotype: Genotype | None
    scale: int  # output size / input size
    device: torch.device
    source: Path  # the file the model came from


class Engine:
    """Base of the registered engines: a model file -> ``Prepared``.

    ``outputs``: the network outputs the engine can give (None: every output the network has);
    ``devices``: the device types it runs on."""

    outputs: tuple[str, ...] | None = None
    devices: tuple[str, ...] = ("cpu", "cuda")

    def prepare(self, model: str | Path, device: str = "auto") -> Prepared:
        """The model file (or a run folder holding model.pt) as this engine runs it on ``device``."""
        path = find_model(model)
        if path.suffix.lower() == ".onnx":
            raise ConfigError(f"{model} is an ONNX file; run it with --engine onnx")
        dev = self.device(device)
        net, genotype = load_model(path)
        net = net.to(dev).eval()
        return Prepared(self.runner(net), net, genotype, genotype_scale(genotype), dev, path)

    def runner(self, net: nn.Module) -> nn.Module:
        """The module that runs ``net`` (on its device): ``net`` itself unless an engine says otherwise."""
        return net

    def device(self, device: str) -> torch.device:
        """``device`` resolved, refused (one line) where this engine does not run."""
        if "cuda" not in self.devices and device not in ("auto", "cpu"):
            raise ConfigError(f"--device {device}: the engine {self.engine_name} runs on the CPU only; "
                              f"drop --device or give cpu")
        return resolve_device(device) if "cuda" in self.devices else torch.device("cpu")

    def check_output(self, output: str) -> None:
        if self.outputs is not None and output not in self.outputs:
            raise ConfigError(f"--output {output}: the engine {self.engine_name} gives {', '.join(self.outputs)} "
                              f"only; use --engine torch with the model file")

    engine_name = "?"  # set by ENGINES.register


def get_engine(name: str) -> Engine:
    """The registered engine ``name`` (a RegistryError listing the others when unknown)."""
    return ENGINES.get(name)()


def prepare(model: str | Path, engine: str = "torch", device: str = "auto", output: str = "x") -> Prepared:
    """``model`` ready to run with ``engine`` on ``device``, giving ``output``."""
    chosen = get_engine(engine)
    chosen.check_output(output)
    ready = chosen.prepare(model, device)
    keep_freed_memory(ready.device)  # reuse freed activation buffers: no page faults per image, steady latency
    return ready
