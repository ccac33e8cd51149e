"""ONNX export of derived networks, and running an exported file with onnxruntime.

The exported graph maps one input ``low`` (N, 3, H, W) in [0, 1] to one output ``x``, the
network's final image (N, 3, H, W), or (N, 3, sH, sW) for a super-resolution network of scale s;
batch, height and width are dynamic axes, so one file serves every image size.

Exporter: PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)`` with
``dynamic_axes``). It needs only ``onnx``; the torch.export-based exporter, the default since
PyTorch 2.9, also needs ``onnxscript``. Tracing records the operations one sample input runs, so
a Python branch on a value would be frozen: the networks' only such branch is RUAS_A's noise
gate (``RUAS.forward`` skips the denoiser when no image of the batch is noisy). ``ExportGraph``
exports the gate as a traced ``torch.where(level >= threshold, denoise(u), u)`` per image on both
branches instead: the ONNX graph always runs the denoiser and keeps its output only for noisy
images, which gives the same images as the skip (the threshold is a constant of the file).
The other shape-dependent branches (``parts._resize``) depend on the up-scaling factor alone,
not on the input size, so the traced graph is right at every size. The graph is that of the
network folded for inference (``space.fold``, in NCHW): the same images, fewer operations.
"""
from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from nas_llv.config import ConfigError, first_line
from nas_llv.space.fold import fold
from nas_llv.atomic import atomic_write
from nas_llv.space.models.networks import RUAS

log = logging.getLogger(__name__)

INPUT, OUTPUT = "low", "x"
DEFAULT_OPSET = 17
OPSETS = range(11, 21)  # Resize with output sizes (11) .. the TorchScript exporter's newest (20)
INSTALL_HINT = "pip install -e '.[onnx]'"
# a size whose shape-dependent branches are the general ones (odd: uneven pooling and padding)
SAMPLE_SIZE = (37, 53)


def require_onnx() -> None:
    """ConfigError (one line, with the install command) unless onnx and onnxruntime import."""
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"ONNX export and the onnx engine need {' and '.join(missing)}, which "
                          f"{'is' if len(missing) == 1 else 'are'} not installed; install them with: {INSTALL_HINT}")


class ExportGraph(nn.Module):
    """The graph to export: y (N, 3, H, W) in [0, 1] -> x, the network's final image, unclipped.

    RUAS_A's gate becomes ``where(level >= threshold, denoise(u), u)`` (see the module docstring);
    any other network is its own forward, whose 'x' output (or tensor output) is kept.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.gated = isinstance(net, RUAS) and net.denoise is not None and net.estimator is not None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.gated:
            u = self.net.scene(y)["u"]
            noisy = self.net.estimator.level(u) >= self.net.threshold
            return torch.where(noisy[:, None, None, None], self.net.denoise(u), u)
        out = self.net(y)
        return out if isinstance(out, torch.Tensor) else out["x"]


def check_exportable(net: nn.Module) -> None:
    """ConfigError unless ``net`` gives a final image 'x' (a tensor, or a dict holding one)."""
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 3, *SAMPLE_SIZE))
    if not isinstance(out, torch.Tensor) and not isinstance(out.get(OUTPUT), torch.Tensor):
        raise ConfigError(f"this network gives no final image 'x' (its outputs: {', '.join(out)}); "
                          f"export needs a derived enhancement network (RUAS_s, RUAS, RUAS_A or an LL-SR network)")


def export_onnx(net: nn.Module, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``net`` (on CPU, eval mode) as an ONNX file at ``path``, atomically; returns the path."""
    if opset not in OPSETS:
        raise ConfigError(f"--opset {opset}: not supported; allowed: {OPSETS.start}..{OPSETS.stop - 1} "
                          f"(default {DEFAULT_OPSET})")
    require_onnx()
    net = net.cpu().eval()
    check_exportable(net)
    # the folded copy (exact up to float rounding): onnxruntime ran it in 0.81-0.82x the plain graph's time
    graph = ExportGraph(fold(net, channels_last=False)).eval()
    sample = torch.rand(1, 3, *SAMPLE_SIZE)
    axes = {INPUT: {0: "batch", 2: "height", 3: "width"}, OUTPUT: {0: "batch", 2: "out_height", 3: "out_width"}}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            # the exporter's deprecation notice, and tracer warnings about the branches the module
            # docstring shows to be size-independent, say nothing a user can act on
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (sample,), str(tmp), input_names=[INPUT], output_names=[OUTPUT],
                              opset_version=opset, dynamo=False, dynamic_axes=axes, do_constant_folding=True)
    return atomic_write(path, write)


class OnnxNet(nn.Module):
    """An exported file run by onnxruntime on CPU, as a module: y (N, 3, H, W) -> x (the file's one
    output) on y's device. It has no parameters; ``threads`` defaults to torch's thread count."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        require_onnx()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: its notices would interleave with the CLI's lines
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidProtobuf, ...)
            raise ConfigError(f"{path}: onnxruntime cannot load this file as an ONNX model: "
                              f"{first_line(exc, type(exc).__name__)}") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ConfigError(f"{path}: needs one 4-D image input (N, 3, H, W), as `nas-llv export` writes; "
                              f"this file takes {[i.name for i in inputs]}")
        check_input(path, inputs[0].name, inputs[0].shape, inputs[0].type)
        self.path, self.input_name, self.input_shape = Path(path), inputs[0].name, _shown(inputs[0].shape)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        try:
            x = self.session.run(None, {self.input_name: y.detach().cpu().float().numpy()})[0]
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, RuntimeException, ...)
            raise ConfigError(f"{self.path}: onnxruntime cannot run it on an image of shape {tuple(y.shape)} "
                              f"(its input '{self.input_name}' is {self.input_shape}): "
                              f"{first_line(exc, type(exc).__name__)}") from None
        return torch.from_numpy(x).to(y.device)


def check_input(path: str | Path, name: str, shape: Sequence[int | str | None], dtype: str) -> None:
    """ConfigError unless an ONNX input of ``shape`` and ``dtype`` takes what the engine gives: float
    images (1, 3, H, W) of any H and W (a named dimension takes any size, a number only itself)."""
    n, c, h, w = shape
    wrong = (f"it takes {dtype}, not float" if dtype != "tensor(float)" else
             f"it takes {c}-channel images, not RGB (3 channels)" if isinstance(c, int) and c != 3 else
             f"it takes batches of {n}, not one image" if isinstance(n, int) and n != 1 else
             f"it takes {_dim(h)}x{_dim(w)} images only" if isinstance(h, int) or isinstance(w, int) else None)
    if wrong is not None:
        raise ConfigError(f"{path}: its input '{name}' has shape {_shown(shape)}: {wrong}; the onnx engine gives "
                          f"it float RGB images (1, 3, H, W) of any height and width, as `nas-llv export` writes it")


def _dim(d: int | str | None) -> str:
    return "?" if d is None else str(d)


def _shown(shape: Sequence[int | str | None]) -> str:
    """(1, 3, 'height', 'width') -> '(1, 3, height, width)'; an unnamed dynamic dimension is '?'."""
    return f"({', '.join(map(_dim, shape))})"


def max_difference(net: nn.Module, onnx_net: OnnxNet, images: Sequence[torch.Tensor]) -> float:
    """Largest |torch - onnxruntime| of the final image over ``images`` (each (N, 3, H, W))."""
    graph = ExportGraph(net.cpu().eval())
    worst = 0.0
    with torch.no_grad():
        for y in images:
            ref, got = graph(y), onnx_net(y)
            if ref.shape != got.shape:
                raise ConfigError(f"onnxruntime gave shape {tuple(got.shape)} where torch gives {tuple(ref.shape)}")
            worst = max(worst, float((ref - got).abs().max()))
    return worst

