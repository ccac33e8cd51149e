"""``nas-llv export MODEL -o net.onnx``: a model file as an ONNX graph, checked with onnxruntime."""
from __future__ import annotations

import argparse
import sys

TOLERANCE = 1e-4  # max |torch - onnxruntime| accepted by the check
CHECK_SIZES = ((40, 56), (27, 33))  # two sizes, neither the traced one: the dynamic axes are used


def run(args: argparse.Namespace) -> int:
    import torch

    from nas_llv.config import ConfigError
    from nas_llv.export.modelfile import find_model, load_model
    from nas_llv.export.onnx import DEFAULT_OPSET, OnnxNet, export_onnx, max_difference
    from nas_llv.paths import check_output_file

    out = check_output_file(args.output, "--output")
    src = find_model(args.model)
    if src.resolve() == out.resolve():
        raise ConfigError(f"--output {args.output} is the model file itself; give another file name")
    net, genotype = load_model(src)
    opset = DEFAULT_OPSET if args.opset is None else args.opset
    path = export_onnx(net, args.output, opset=opset)
    print(f"exported {genotype.describe()} -> {path} (opset {opset}; input 'low' (N, 3, H, W), "
          f"output 'x'; batch, height and width dynamic)")
    if args.no_check:
        return 0
    images = [torch.rand(1, 3, h, w) for h, w in CHECK_SIZES]
    diff = max_difference(net, OnnxNet(path), images)
    sizes = " and ".join(f"{w}x{h}" for h, w in CHECK_SIZES)
    print(f"checked with onnxruntime at {sizes}: max |torch - onnx| = {diff:.2g}")
    if not diff <= TOLERANCE:
        print(f"nas-llv export: warning: the difference exceeds {TOLERANCE:g}; the exported graph does not "
              f"reproduce the network", file=sys.stderr)
        return 1
    return 0


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
