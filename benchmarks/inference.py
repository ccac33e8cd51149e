"""Inference latency of the derived CVPR RUAS network: today's plain path against the fast path.

Uses the published CVPR-2021 weights (``lol.pt``) from ../shared/data/ruas_cvpr_weights when
present (otherwise the same architecture with random weights: latency does not depend on the
values), on one 600x400 image. The plain path is the network ``import_ruas`` builds, run as
``nas-llv enhance --engine torch`` runs it; the fast path is ``nas_llv.space.fold.fold(net)``
(``enhance --engine fast``). They are timed in one run, alternating run by run: ``--rounds``
rounds, each the median of ``--repeats`` runs of each path after 3 warm-up runs of each.

    python benchmarks/inference.py --threads 2 [--repeats 15] [--rounds 2] [--levers] [--compile] [--onnx] [--tpami]
        [--system-malloc]

It prints fast/plain and the implied fraction of the public RUAS code's time, fast/plain / 0.88,
since the public CVPR network took 0.88x the plain path's time side by side (issue 11: 321 / 249 ms
against 358 / 287 ms), and the largest |fast - plain| of the final image
over the timing input and the shared MIT images. ``--levers`` also times each part of the fast
path alone, each against the plain path in the same alternating way; ``--compile`` adds
``fold(net, compile=True)`` (``enhance --engine compiled``, compiled before timing); ``--onnx``
adds onnxruntime (CPU provider, same threads) on the graph ``nas-llv export`` writes (folded); ``--tpami``
adds the TPAMI RUAS_A network (gate open). On CPU both paths run with glibc's malloc keeping
freed memory (``device.keep_freed_memory``), as ``enhance`` and ``eval`` run them;
``--system-malloc`` leaves it alone.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from nas_llv.data import list_images, read_image
from nas_llv.device import keep_freed_memory, resolve_device
from nas_llv.space.fold import fold
from nas_llv.export.ruas_import import import_ruas, ruas_genotype

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
WEIGHTS = SHARED / "ruas_cvpr_weights" / "lol.pt"
PUBLIC_PER_PLAIN = 0.88  # the public CVPR network's time / the plain path's, side by side (issue 11)
TOLERANCE = 1 / 255


def cvpr() -> torch.nn.Module:
    return import_ruas(WEIGHTS)[0] if WEIGHTS.is_file() else ruas_genotype("cvpr").build().eval()


def tpami_open() -> torch.nn.Module:
    net = ruas_genotype("tpami", "ruas_a").build().eval()
    net.threshold = float("-inf")  # every image passes the gate: the denoiser runs
    return net


def levers(net: torch.nn.Module, args: argparse.Namespace) -> dict[str, Callable[[], torch.nn.Module]]:
    """Name -> the network of that variant (built when timed)."""
    out: dict[str, Callable[[], torch.nn.Module]] = {}
    if args.levers:
        out.update({
            "channels_last only": lambda: fold(net, cells=False, pool=False),
            "shifted max only": lambda: fold(net, cells=False, channels_last=False),
            "cells folded only": lambda: fold(net, pool=False, channels_last=False),
            "folded + shifted max (NCHW)": lambda: fold(net, channels_last=False),
        })
    out["fast: fold(net)"] = lambda: fold(net)
    if args.compile:
        out["fold(net, compile=True)"] = lambda: fold(net, compile=True)
    if args.onnx:
        out["onnxruntime (nas-llv export)"] = lambda: _onnx(net)  # export_onnx writes the folded graph
    return out


def _onnx(net: torch.nn.Module) -> torch.nn.Module:
    from nas_llv.export.onnx import OnnxNet, export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        return OnnxNet(export_onnx(net, Path(tmp) / "net.onnx"))


def final(net: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    out = net(y)
    return out if isinstance(out, torch.Tensor) else out["x"]


@torch.inference_mode()
def max_difference(plain: torch.nn.Module, fast: torch.nn.Module, images: list[torch.Tensor]) -> float:
    return max(float((final(plain, y) - final(fast, y)).abs().max()) for y in images)


@torch.inference_mode()
def compare(plain: torch.nn.Module, fast: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace,
            device: torch.device) -> tuple[list[float], list[float]]:
    """Median ms of plain and fast per round; within a round the two alternate run by run (plain,
    fast, plain, fast, ...), after 3 warm-up runs of each, so a load that comes and goes on a
    shared machine weighs on both alike."""
    x = x.to(device)
    plain, fast = plain.to(device).eval(), fast.to(device).eval()
    ms: dict[str, list[float]] = {"plain": [], "fast": []}
    for _ in range(args.rounds):
        times: dict[str, list[float]] = {"plain": [], "fast": []}
        for i in range(3 + args.repeats):
            for name, net in (("plain", plain), ("fast", fast)):
                _sync(device)
                start = time.perf_counter()
                net(x)
                _sync(device)
                if i >= 3:
                    times[name].append((time.perf_counter() - start) * 1e3)
        for name in ms:
            ms[name].append(statistics.median(times[name]))
    return ms["plain"], ms["fast"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, help="CPU threads for torch and onnxruntime (default: torch's)")
    ap.add_argument("--levers", action="store_true", help="also time each part of the fast path alone")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the fast path")
    ap.add_argument("--onnx", action="store_true", help="also time onnxruntime on the exported (folded) graph")
    ap.add_argument("--tpami", action="store_true", help="also time the TPAMI RUAS_A network, gate open")
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's malloc settings alone (enhance and eval keep freed memory on CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    kept = not args.system_malloc and keep_freed_memory(device)  # as enhance runs: both paths
    x = torch.rand(1, 3, 400, 600)
    mit = SHARED / "mit5" / "low"
    images = [x] + ([read_image(p)[None] for p in list_images(mit)] if mit.is_dir() else [])
    nets = {"CVPR RUAS (lol.pt)" if WEIGHTS.is_file() else "CVPR RUAS (random weights)": cvpr()}
    if args.tpami:
        nets["TPAMI RUAS_A, gate open"] = tpami_open()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, input 600x400, device {device}, "
          f"median of {args.repeats} after 3 warm-up, {args.rounds} alternating rounds, "
          f"malloc {'keeps freed memory (both paths)' if kept else 'as the system set it'}")
    print(f"{'network':26s} {'path':30s} {'plain ms':>18s} {'path ms':>18s} {'ratio':>6s} {'x public':>8s} "
          f"{'max |diff|':>10s}")
    for name, plain in nets.items():
        for lever, build in levers(plain, args).items():
            fast = build()
            diff = max_difference(plain, fast, images)
            p, f = compare(plain, fast, x, args, device)
            ratio = statistics.median(f) / statistics.median(p)
            flag = "" if diff <= TOLERANCE else "  > 1/255!"
            print(f"{name:26s} {lever:30s} {' / '.join(f'{v:.1f}' for v in p):>18s} "
                  f"{' / '.join(f'{v:.1f}' for v in f):>18s} {ratio:6.3f} {ratio / PUBLIC_PER_PLAIN:8.3f} "
                  f"{diff:10.2e}{flag}")


if __name__ == "__main__":
    main()
