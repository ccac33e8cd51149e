"""``nas-llv space show FILE`` and ``nas-llv space draw FILE -o cell.png``."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def run_show(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    print("\n".join(pipeline.space_show(args.file).lines))
    return 0


def run_draw(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    print(f"wrote {pipeline.space_draw(args.file, args.output)}")
    return 0


@COMMANDS.register("space")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="inspect a search space file", description="Inspect a search space.")
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = ssub.add_parser("show", help="nodes, edges, candidates, space size, supernet params")
    show.add_argument("file", help="a space YAML file or a shipped space name (see `nas-llv list spaces`)")
    show.set_defaults(run=run_show)
    draw = ssub.add_parser("draw", help="draw the cell DAG to a PNG")
    draw.add_argument("file", help="a space YAML file or a shipped space name")
    draw.add_argument("-o", "--output", default="cell.png", help="output PNG (default: cell.png)")
    draw.set_defaults(run=run_draw)
