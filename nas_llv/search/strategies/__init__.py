"""Search strategies (importing registers them): cooperative, global, independent, hyper."""
from __future__ import annotations

from nas_llv.search.strategies import hyper, ruas  # noqa: F401
from nas_llv.search.loop import Searcher

__all__ = ["Searcher"]
