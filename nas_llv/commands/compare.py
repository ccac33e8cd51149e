"""``nas-llv compare A B ...``: evaluated models side by side, printed and written as Markdown."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def run(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    done = pipeline.compare(args.targets, args.output)
    print(done.table, end="")
    if done.written:
        print(f"wrote {done.written}")
    return 0


@COMMANDS.register("compare")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="side-by-side table of several `nas-llv eval` results",
                       description="Read the summary.json of eval outputs (or run folders holding eval-*/ "
                                   "folders) and print one row per evaluation: metrics, params, FLOPs, latency.")
    p.add_argument("targets", nargs="+", help="summary.json files, eval output folders, or run folders")
    p.add_argument("-o", "--output", help="also write the table to this Markdown file")
    p.set_defaults(run=run)
