"""``nas-llv runs [DIR]``: one line per run folder under DIR (default results/): name, kind,
status, steps, key metric and genotype hash, oldest first (``nas_llv/runlist.py``)."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from nas_llv import pipeline

    rows = pipeline.list_runs(args.dir)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    elif rows:
        print("\n".join(pipeline.table_lines(rows)))
    else:
        print(f"no run folders in {args.dir}")
    return 0


@COMMANDS.register("runs")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the run folders under a directory, one line each",
                       description="One line per run folder directly under DIR: name, kind (search, train, "
                                   "sweep, eval), status, steps, key metric, genotype hash; oldest first. A folder "
                                   "that cannot be read is one line saying why.")
    p.add_argument("dir", nargs="?", default="results", metavar="DIR",
                   help="the folder holding the runs (default results/), or one run or sweep folder")
    p.add_argument("--json", action="store_true", help="the rows as a JSON list of objects instead")
    p.set_defaults(run=run)
