"""``nas-llv list ops|spaces|parts|losses|strategies|hypergrads|extensions|datasets|networks|engines``."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def run(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    for line in pipeline.listing(args.kind):
        print(line)
    return 0


@COMMANDS.register("list")
def add_parser(sub: argparse._SubParsersAction) -> None:
    from nas_llv.pipeline import KINDS  # pipeline.spaces, which imports no torch to name them

    p = sub.add_parser("list", help="list registered ops, spaces, losses, strategies, ...",
                       description="List what nas-llv knows by name.")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(run=run)
