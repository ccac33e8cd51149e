"""Latency of RUAS networks on one 600x400 image (a LOL frame), median after warm-up.

Uses the published CVPR-2021 weights from ../shared/data/ruas_cvpr_weights when present
(otherwise the same architecture with random weights: latency does not depend on the values),
and a RUAS_A network with the TPAMI genotype and noise gate, with the gate open and shut.

    python benchmarks/inference.py [--device auto] [--repeats 20] [--threads N] [--onnx]

``--onnx`` exports each network (``nas_llv.export.onnx``) and times onnxruntime's CPU provider
beside torch, in the same run and with the same thread count (needs ``pip install -e '.[onnx]'``).
The exported RUAS_A graph runs its denoiser whatever the gate decides (a traced ``where``), so
"gate shut" costs as much as "gate open" there.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from nas_llv.device import resolve_device
from nas_llv.metrics import count_flops, count_params, latency
from nas_llv.export.ruas_import import import_ruas, ruas_genotype

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ruas_cvpr_weights" / "lol.pt"


def networks() -> dict[str, torch.nn.Module]:
    if WEIGHTS.is_file():
        cvpr, _, _ = import_ruas(WEIGHTS)
    else:
        cvpr = ruas_genotype("cvpr").build()
    tpami = ruas_genotype("tpami", "ruas_a").build()
    shut = ruas_genotype("tpami", "ruas_a").build()
    shut.threshold = float("inf")  # no image passes the gate: the denoiser is skipped
    return {"CVPR RUAS (lol.pt)": cvpr, "TPAMI RUAS_A, gate open": _open(tpami), "TPAMI RUAS_A, gate shut": shut}


def _open(net: torch.nn.Module) -> torch.nn.Module:
    net.threshold = float("-inf")
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: torch's)")
    ap.add_argument("--onnx", action="store_true", help="also time the exported network with onnxruntime (CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    x = torch.rand(1, 3, 400, 600)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, input 600x400")
    print(f"{'network':28s} {'params':>8s} {'GFLOPs':>8s} {'median ms':>10s}"
          + (f" {'onnxrt ms':>10s}" if args.onnx else ""))
    for name, net in networks().items():
        net.eval()
        flops = count_flops(net, x)
        lat = latency(net, x.to(device), repeats=args.repeats, warmup=3, device=device)
        extra = f" {_onnx_ms(net, x, args.repeats):10.1f}" if args.onnx else ""
        print(f"{name:28s} {count_params(net):8,d} {flops / 1e9:8.3f} {lat['median_s'] * 1e3:10.1f}{extra}")
    print(f"device: {lat['device_name']}" + ("; onnxruntime: CPU provider" if args.onnx else ""))


def _onnx_ms(net: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median ms of the exported ``net`` run by onnxruntime on CPU, at torch's thread count."""
    from nas_llv.export.onnx import OnnxNet, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(net, Path(tmp) / "net.onnx")
        return latency(OnnxNet(path), x, repeats=repeats, warmup=3, device="cpu")["median_s"] * 1e3


if __name__ == "__main__":
    main()
