"""``nas-llv enhance MODEL IN_DIR OUT_DIR``: enhance every image of a folder with a model run by an
inference engine (``nas_llv.inference.engines``: torch, fast, compiled, onnx); ``pipeline.enhance``."""
from __future__ import annotations

import argparse

from nas_llv.commands._images import add_tile_options
from nas_llv.device import DEVICES
from nas_llv.registry import COMMANDS


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nas_llv import pipeline

    with logging_redirect_tqdm():
        result = pipeline.enhance(args.model, args.in_dir, args.out_dir, engine=args.engine, output=args.output,
                                  save=args.save, device=args.device, overwrite=args.overwrite,
                                  progress=not args.quiet, tile=args.tile, max_pixels=args.max_pixels or None)
    print(f"wrote {len(result.written)} image(s) to {args.out_dir}"
          + (f"; {len(result.failed)} failed:" if result.failed else ""))
    for src, reason in result.failed:
        print(f"  {src}: {reason}" if not reason.startswith(str(src)) else f"  {reason}")
    return 1 if result.failed else 0


@COMMANDS.register("enhance")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enhance", help="enhance every image in a folder with a model",
                       description="Enhance every image directly inside IN_DIR into OUT_DIR, keeping file names "
                                   "(JPEG/WEBP inputs are written as <name>.png, lossless). Unreadable files are "
                                   "reported and skipped; the exit status is 1 if any failed. A super-resolution "
                                   "model writes images scale x the input size.")
    p.add_argument("model", help="a model file (nas-llv train / import-ruas), or a run folder with model.pt; "
                                 "with --engine onnx, an ONNX file (nas-llv export)")
    p.add_argument("in_dir", help="folder of input images (png, jpg, bmp, tif, webp; any size)")
    p.add_argument("out_dir", help="folder for the results (created)")
    p.add_argument("--output", default="x",
                   help="x: the network's final image (default); u: RUAS scene-module output, before denoising")
    p.add_argument("--save", choices=("round", "truncate"), default="round",
                   help="8-bit conversion: round (default), or truncate as the RUAS authors save")
    p.add_argument("--engine", default="torch",
                   help="an inference engine (nas-llv list engines): torch: run a model file (default); fast: the same model folded for inference (merged "
                        "kernels, channels_last; the same images up to float rounding, about half the time on "
                        "a 2-core CPU); compiled: fast, then torch.compile (a compilation of about a minute "
                        "before the first image, faster after it); onnx: run an exported ONNX file with "
                        "onnxruntime on CPU (output x only; needs pip install -e '.[onnx]')")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow OUT_DIR to be IN_DIR (replacing the input images) or a folder inside it")
    add_tile_options(p, max_pixels=True)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
