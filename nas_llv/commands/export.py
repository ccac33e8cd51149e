"""``nas-llv export MODEL -o net.onnx``: a model file as an ONNX graph, checked with onnxruntime."""
from __future__ import annotations

import argparse
import sys

from nas_llv.registry import COMMANDS

def run(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    done = pipeline.export(args.model, args.output, opset=args.opset, check=not args.no_check)
    print(f"exported {done.description} -> {done.path} (opset {done.opset}; input 'low' (N, 3, H, W), "
          f"output 'x'; batch, height and width dynamic)")
    if done.max_difference is None:
        return 0
    sizes = " and ".join(f"{w}x{h}" for h, w in done.check_sizes)
    print(f"checked with onnxruntime at {sizes}: max |torch - onnx| = {done.max_difference:.2g}")
    if not done.reproduces:
        print(f"nas-llv export: warning: the difference exceeds {pipeline.EXPORT_TOLERANCE:g}; the exported graph "
              f"does not reproduce the network", file=sys.stderr)
        return 1
    return 0


@COMMANDS.register("export")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model file as ONNX (run it with onnxruntime)",
                       description="Write a model file's network (RUAS_s, RUAS, RUAS_A with its noise gate, or an "
                                   "LL-SR network) as an ONNX graph: input 'low' (N, 3, H, W) in [0, 1], output "
                                   "'x', the final image (N, 3, sH, sW for scale s); batch, height and width are "
                                   "dynamic. The file is then run once with onnxruntime at two sizes and compared "
                                   "with torch. Needs the onnx extra: pip install -e '.[onnx]'.")
    p.add_argument("model", help="a model file (nas-llv train / import-ruas), or a run folder with model.pt")
    p.add_argument("-o", "--output", default="model.onnx", help="ONNX file to write (default: model.onnx)")
    # the numbers of nas_llv.export.onnx (OPSETS, DEFAULT_OPSET), written out: --help imports no torch
    p.add_argument("--opset", type=int, help="ONNX opset, 11..20 (default: 17)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison after export")
    p.set_defaults(run=run)
