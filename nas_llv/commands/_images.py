"""What the commands that run a network over images (enhance, eval) share on the command line."""
from __future__ import annotations

import argparse


def add_tile_options(p: argparse.ArgumentParser, max_pixels: bool = False) -> None:
    """``--tile`` and, for commands that read any folder, ``--max-pixels`` (docs/evaluation.md)."""
    p.add_argument("--tile", type=int, default=None,
                   help="run images in tiles of this side (pixels, each with 32 px of context, the same "
                        "output as whole); default: only an image too large for the free memory, with a "
                        "side chosen from it; 0: never")
    if max_pixels:
        p.add_argument("--max-pixels", type=int, default=300_000_000,
                       help="refuse an image of more pixels before decoding it (reported, the folder goes "
                            "on; default 300000000, 0: no limit)")
