"""Search strategies: cooperative, global, independent (``ruas``), hyper (``hyper``).

A strategy is one module in this package: a ``Strategy`` subclass registered with its options
dataclass (``@STRATEGIES.register("name", config=NameConfig)``). ``STRATEGIES`` imports every
module in this package on its first lookup (``nas_llv.registry``), which registers them; nothing
else names a strategy.
"""
from __future__ import annotations

from nas_llv.search.strategy import Strategy

__all__ = ["Strategy"]
