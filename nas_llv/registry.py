"""Name -> class registries for the things users extend.

Each registry maps a name to a callable. ``build(cfg)`` copies the config, pops ``type``
and calls the registered callable with the remaining keys, so a builder only ever sees
its own subtree of the recipe.

One discovery rule for every registry: a registry names ONE package (``package=``) and on its
first lookup imports every module of it whose name does not start with ``_`` (as BasicSR finds
its archs), which registers their entries. Adding an entry is one new file in that package; a
lookup never depends on what the caller happened to import before.
"""
from __future__ import annotations

import copy
from importlib import import_module
from pkgutil import iter_modules
from typing import Any, Callable, Iterator, Mapping

from nas_llv.config import ConfigError


class RegistryError(ConfigError, KeyError):
    """An unknown or duplicate name; the message lists what is allowed. A user's error like any
    other (a ``ConfigError``: one line, exit 2), and a ``KeyError`` for code that looks names up."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry:
    """A named table of constructors: ``@REG.register('name')`` then ``REG.build({'type': 'name', ...})``."""

    def __init__(self, kind: str, name_attr: str | None = None, package: str | None = None) -> None:
        self.kind, self.name_attr = kind, name_attr  # name_attr: the class attribute told its name
        self.package, self._loaded = package, package is None
        self._table: dict[str, Callable[..., Any]] = {}
        self._configs: dict[str, type] = {}

    def _load(self) -> None:
        """Import every public module of ``package`` once (importing them registers their entries)."""
        if not self._loaded:
            self._loaded = True
            for module in iter_modules(import_module(self.package).__path__):
                if not module.name.startswith("_"):
                    import_module(f"{self.package}.{module.name}")

    def register(self, name: str | None = None, config: type | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register under ``name``; ``config`` is the entry's own typed options (a dataclass):
        a recipe section that picks this entry accepts those keys and no other entry's."""
        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            key = name or obj.__name__
            if key in self._table:
                raise RegistryError(f"{self.kind} '{key}' is registered twice")
            self._table[key] = obj
            if config is not None:
                self._configs[key] = config
            if self.name_attr is not None:  # e.g. a loss names itself in its error messages
                setattr(obj, self.name_attr, key)
            return obj

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        self._load()
        try:
            return self._table[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} '{name}'; allowed: {', '.join(sorted(self._table))}"
            ) from None

    def unregister(self, name: str) -> None:
        """Remove ``name`` (an entry registered for a while, e.g. in a test)."""
        self.get(name)
        del self._table[name]
        self._configs.pop(name, None)

    def config_of(self, name: str) -> type | None:
        """The options dataclass ``name`` was registered with (None: it takes no options)."""
        self.get(name)
        return self._configs.get(name)

    def build(self, cfg: Mapping[str, Any] | str, **extra: Any) -> Any:
        """Build from ``{'type': name, **kwargs}`` (or a bare name); ``extra`` are passed through."""
        if isinstance(cfg, str):
            cfg = {"type": cfg}
        kwargs = copy.deepcopy(dict(cfg))
        if "type" not in kwargs:
            raise RegistryError(f"{self.kind} config needs a 'type'; allowed: {', '.join(sorted(self._table))}")
        return self.get(kwargs.pop("type"))(**kwargs, **extra)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._table)


LOSSES = Registry("loss", name_attr="loss_name", package="nas_llv.losses")
DATASETS = Registry("dataset", package="nas_llv.data")
STRATEGIES = Registry("strategy", package="nas_llv.search.strategies")
# a strategy kind (``Strategy.kind``: one_shot, multi_trial) -> the search loop that runs such strategies
SEARCH_LOOPS = Registry("search loop", package="nas_llv.search.loops")
HYPERGRADS = Registry("hypergradient method", name_attr="method_name", package="nas_llv.search.hypergrad")
# a search extension's name is its key of the recipe's search: section (search.hessian, search.cost, ...)
EXTENSIONS = Registry("search extension", name_attr="key", package="nas_llv.search.extensions")
MODELS = Registry("model", package="nas_llv.space.models")
NETWORKS = Registry("network", package="nas_llv.space.models")
ENGINES = Registry("engine", name_attr="engine_name", package="nas_llv.inference.engines")
COMMANDS = Registry("command", package="nas_llv.commands")  # name -> add_parser(subparsers)
