"""``nas-llv report``: a run or a sweep as one static HTML page (docs/runs.md, "Report").

Trajectory charts (losses, loss terms, metrics, hyper-variables, Hessian eigenvalue, cost), each
edge's op probabilities α per module, the genotype with its margins and its cells drawn, the
evaluations' tables and sample images before and after; for a sweep, each trial's final genotype
and scores, and the trials' trajectories overlaid. Charts are plotly's (interactive) where it is
installed (``pip install -e '.[report]'``), else matplotlib PNGs; the page needs no network.
"""
from __future__ import annotations

from nas_llv.report.page import REPORT, write_report

__all__ = ["REPORT", "write_report"]
