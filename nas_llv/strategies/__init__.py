"""Search strategies (importing registers them): cooperative, global, independent."""
from __future__ import annotations

from . import ruas  # noqa: F401
from .searcher import Searcher, resolve_device

__all__ = ["Searcher", "resolve_device"]
