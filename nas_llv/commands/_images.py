"""What the commands that run a network over images (enhance, eval) share on the command line."""
from __future__ import annotations

import argparse

# nas_llv.tiles.DEFAULT_PAD and MAX_PIXELS, written out: importing tiles would load torch into every
# command's argument parser (tests/test_cli.py keeps it out); tests/test_tiles.py holds them equal
PAD, MAX_PIXELS = 32, 300_000_000


def add_tile_options(p: argparse.ArgumentParser, max_pixels: bool = False) -> None:
    """``--tile`` and, for commands that read any folder, ``--max-pixels`` (docs/evaluation.md)."""
    p.add_argument("--tile", type=int, default=None,
                   help=f"run images in tiles of this side (pixels, each with {PAD} px of context, the same "
                        "output as whole); default: only an image too large for the free memory, with a "
                        "side chosen from it; 0: never")
    if max_pixels:
        p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                       help="refuse an image of more pixels before decoding it (reported, the folder goes "
                            f"on; default {MAX_PIXELS}, 0: no limit)")
