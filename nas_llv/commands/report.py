"""``nas-llv report RUN|SWEEP [-o report.html]``: a run or a sweep folder as one static HTML page."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a number of images >= 0, got '{text}'")
    return n


def run(args: argparse.Namespace) -> int:
    from nas_llv import pipeline

    print(f"wrote {pipeline.report(args.target, args.output, samples=args.samples, plots=args.plots)}")
    return 0


@COMMANDS.register("report")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run or a sweep as one static HTML page (plots, genotype, scores)",
                       description="One self-contained HTML page of a run folder (trajectory and α plots, the "
                                   "genotype and its cells, Hessian and cost curves, evaluations with sample "
                                   "images) or of a sweep folder (every trial's genotype and scores, the "
                                   "trajectories overlaid). It opens offline in any browser.")
    p.add_argument("target", help="a run folder (search or training), a sweep folder, or an eval -o folder")
    p.add_argument("-o", "--output", metavar="FILE", help="the HTML file to write (default TARGET/report.html)")
    p.add_argument("--samples", type=_count, default=3, metavar="N",
                   help="evaluated images shown before and after per evaluation (default 3; 0: none)")
    p.add_argument("--plots", choices=("auto", "plotly", "matplotlib"), default="auto",
                   help="interactive plotly charts (auto: where plotly is installed) or matplotlib PNGs")
    p.set_defaults(run=run)
