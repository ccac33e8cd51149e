"""Search strategies (importing registers them): cooperative, global, independent, hyper."""
from __future__ import annotations

from . import hyper, ruas  # noqa: F401
from .searcher import Searcher

__all__ = ["Searcher"]
