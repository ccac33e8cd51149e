"""``nas-llv import-ruas WEIGHTS.pt -o model.pt``: the authors' RUAS weights as a nas-llv model."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def run(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    done = pipeline.import_ruas(args.weights, args.output, release=args.release, variant=args.variant)
    print(f"imported RUAS {done.release.upper()} weights ({done.variant}, {done.params:,} parameters) -> {done.path}")
    if done.unused:
        print(f"  left out (not part of variant {done.variant}): {', '.join(done.unused)}")
    return 0


@COMMANDS.register("import-ruas")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-ruas", help="convert published RUAS weights (CVPR or TPAMI) to a nas-llv model",
                       description="Convert the RUAS authors' checkpoint (lol.pt, upe.pt, denoise.pt or a TPAMI "
                                   "checkpoint) into a nas-llv model file that `enhance`, `eval` and `train` read.")
    p.add_argument("weights", help="the authors' .pt file")
    p.add_argument("-o", "--output", default="model.pt", help="model file to write (default: model.pt)")
    p.add_argument("--release", help="architecture of the release: cvpr or tpami (default: detected from the keys)")
    p.add_argument("--variant",
                   help="ruas_s: scene module only; ruas: + denoiser; ruas_a: + noise gate (TPAMI). "
                        "Default: ruas for CVPR, ruas_a for TPAMI")
    p.set_defaults(run=run)
