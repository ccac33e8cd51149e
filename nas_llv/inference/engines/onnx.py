"""Engine ``onnx``: onnxruntime on the CPU, on an ONNX file from ``nas-llv export``, or on a model
file exported to a temporary ONNX graph first (the same export as ``nas-llv export``).

An ONNX file holds one output, the final image ``x``. Given a model file, params and FLOPs are
the model's; given an ONNX file there is no torch network, so ``eval`` reports neither, and the
scale of a super-resolution graph is read from its output size on a small input.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from nas_llv.config import ConfigError
from nas_llv.inference.engine import Engine, Prepared
from nas_llv.export.modelfile import find_model, load_model
from nas_llv.export.onnx import OnnxNet, export_onnx, require_onnx
from nas_llv.registry import ENGINES
from nas_llv.space.genotype import genotype_scale

PROBE = 16  # side of the input that measures an ONNX file's scale


@ENGINES.register("onnx")
class Onnx(Engine):
    """onnxruntime on the CPU: an ONNX file (nas-llv export), or a model file exported on the fly; output x only"""

    outputs = ("x",)
    devices = ("cpu",)

    def prepare(self, model: str | Path, device: str = "auto") -> Prepared:
        require_onnx()
        dev = self.device(device)
        path = Path(model)
        if path.suffix.lower() == ".onnx":
            if not path.is_file():
                raise ConfigError(f"{model}: no such ONNX file; write one with `nas-llv export MODEL -o net.onnx`")
            runner = OnnxNet(path)
            with torch.no_grad():
                scale = runner(torch.rand(1, 3, PROBE, PROBE)).shape[-1] // PROBE
            return Prepared(runner, None, None, scale, dev, path)
        path = find_model(model)
        net, genotype = load_model(path)
        with tempfile.TemporaryDirectory(prefix="nas_llv_onnx_") as tmp:
            # onnxruntime reads the file when the session is made; the folder may go after that
            runner = OnnxNet(export_onnx(net, Path(tmp) / "model.onnx"))
        return Prepared(runner, net.eval(), genotype, genotype_scale(genotype), dev, path)
