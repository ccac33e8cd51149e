"""``nas-llv enhance MODEL IN_DIR OUT_DIR``: enhance every image of a folder, with torch (a model
file; ``--engine fast``: folded for inference, ``nas_llv.export.fold``; ``compiled``: and
``torch.compile``d) or onnxruntime (``--engine onnx``: a file from ``nas-llv export``)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from nas_llv.choices import DEVICES, ENGINES, OUTPUTS
from nas_llv.config import ConfigError

if TYPE_CHECKING:
    from nas_llv.export.onnx import OnnxNet


def check_folders(in_dir: str, out_dir: str, overwrite: bool) -> None:
    """IN_DIR must be a folder; OUT_DIR a writable folder that is neither IN_DIR nor inside it
    (the results would replace or mix with the user's images) unless ``overwrite``."""
    from nas_llv.paths import check_output_dir

    src, dst = Path(in_dir), Path(out_dir)
    if not src.is_dir():
        raise ConfigError(f"IN_DIR {in_dir}: {'is a file' if src.exists() else 'no such folder'}; "
                          f"give a folder of images")
    check_output_dir(dst, "OUT_DIR")
    if overwrite:
        return
    src, dst = src.resolve(), dst.resolve()
    if dst == src:
        raise ConfigError(f"OUT_DIR {out_dir} is the input folder: the results would overwrite your images; "
                          f"give another folder, or --overwrite to replace them")
    if src in dst.parents:
        raise ConfigError(f"OUT_DIR {out_dir} lies inside the input folder {in_dir}; give a folder outside it, "
                          f"or --overwrite to write there anyway")


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from nas_llv.device import keep_freed_memory, resolve_device
    from nas_llv.derive.inference import enhance_folder
    from nas_llv.export.fold import for_engine
    from nas_llv.export.modelfile import find_model, load_model

    check_folders(args.in_dir, args.out_dir, args.overwrite)
    if args.engine == "onnx":
        if args.output != "x":
            raise ConfigError(f"--output {args.output}: the onnx engine gives the final image x only "
                              f"(an exported file has one output); use --engine torch with the model file")
        net, device = _onnx_net(args.model, args.device), "cpu"
    else:
        if Path(args.model).suffix.lower() == ".onnx":
            raise ConfigError(f"{args.model} is an ONNX file; run it with --engine onnx")
        device = resolve_device(args.device)
        keep_freed_memory(device)  # reuse freed activation buffers: no page faults per image
        net, _ = load_model(find_model(args.model))
        net = for_engine(net, args.engine)
    with logging_redirect_tqdm():
        result = enhance_folder(net, args.in_dir, args.out_dir, output=args.output, save=args.save,
                                device=device, progress=not args.quiet)
    print(f"wrote {len(result.written)} image(s) to {args.out_dir}"
          + (f"; {len(result.failed)} failed:" if result.failed else ""))
    for src, reason in result.failed:
        print(f"  {src}: {reason}" if not reason.startswith(str(src)) else f"  {reason}")
    return 1 if result.failed else 0


def _onnx_net(path: str, device: str) -> OnnxNet:
    """The exported file at ``path`` run by onnxruntime, on CPU."""
    from nas_llv.export.onnx import OnnxNet

    if device not in ("auto", "cpu"):
        raise ConfigError(f"--device {device}: the onnx engine runs on CPU (onnxruntime's CPU provider); "
                          f"drop --device or give cpu")
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such ONNX file; write one with `nas-llv export MODEL -o net.onnx`")
    return OnnxNet(path)


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
    p.add_argument("--output", choices=OUTPUTS, default="x",
                   help="x: the network's final image (default); u: RUAS scene-module output, before denoising")
    p.add_argument("--save", choices=("round", "truncate"), default="round",
                   help="8-bit conversion: round (default), or truncate as the RUAS authors save")
    p.add_argument("--engine", choices=(*ENGINES, "onnx"), default="torch",
                   help="torch: run a model file (default); fast: the same model folded for inference (merged "
                        "kernels, channels_last; the same images up to float rounding, about half the time on "
                        "a 2-core CPU); compiled: fast, then torch.compile (a compilation of about a minute "
                        "before the first image, faster after it); onnx: run an exported ONNX file with "
                        "onnxruntime on CPU (output x only; needs pip install -e '.[onnx]')")
    p.add_argument("--device", default="auto", help=f"{', '.join(DEVICES)} or cuda:N (default: auto)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow OUT_DIR to be IN_DIR (replacing the input images) or a folder inside it")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)
