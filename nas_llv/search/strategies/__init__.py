"""Search strategies: cooperative, global, independent (``ruas``), hyper (``hyper``).

A strategy is one module in this package: a ``Strategy`` subclass registered with its options
dataclass (``@STRATEGIES.register("name", config=NameConfig)``). Importing the package imports
every module in it (in name order, as BasicSR finds its archs), which registers them; nothing
else names a strategy.
"""
from __future__ import annotations

from importlib import import_module
from pkgutil import iter_modules

from nas_llv.search.strategy import Strategy

for _module in iter_modules(__path__):
    import_module(f"{__name__}.{_module.name}")

__all__ = ["Strategy"]
