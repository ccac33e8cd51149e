"""Name -> class registries for the things users extend.

Each registry maps a name to a callable. ``build(cfg)`` copies the config, pops ``type``
and calls the registered callable with the remaining keys, so a builder only ever sees
its own subtree of the recipe.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator, Mapping


class RegistryError(KeyError):
    """An unknown or duplicate name; the message lists what is allowed."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


class Registry:
    """A named table of constructors: ``@REG.register('name')`` then ``REG.build({'type': 'name', ...})``."""

    def __init__(self, kind: str, name_attr: str | None = None) -> None:
        self.kind, self.name_attr = kind, name_attr  # name_attr: the class attribute told its name
        self._table: dict[str, Callable[..., Any]] = {}

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            key = name or obj.__name__
            if key in self._table:
                raise RegistryError(f"{self.kind} '{key}' is registered twice")
            self._table[key] = obj
            if self.name_attr is not None:  # e.g. a loss names itself in its error messages
                setattr(obj, self.name_attr, key)
            return obj

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._table[name]
        except KeyError:
            raise RegistryError(
                f"unknown {self.kind} '{name}'; allowed: {', '.join(sorted(self._table))}"
            ) from None

    def build(self, cfg: Mapping[str, Any] | str, **extra: Any) -> Any:
        """Build from ``{'type': name, **kwargs}`` (or a bare name); ``extra`` are passed through."""
        if isinstance(cfg, str):
            cfg = {"type": cfg}
        kwargs = copy.deepcopy(dict(cfg))
        if "type" not in kwargs:
            raise RegistryError(f"{self.kind} config needs a 'type'; allowed: {', '.join(sorted(self._table))}")
        return self.get(kwargs.pop("type"))(**kwargs, **extra)

    def names(self) -> list[str]:
        return sorted(self._table)

    def __contains__(self, name: object) -> bool:
        return name in self._table

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._table))

    def __len__(self) -> int:
        return len(self._table)


LOSSES = Registry("loss", name_attr="loss_name")
DATASETS = Registry("dataset")
STRATEGIES = Registry("strategy")
HYPERGRADS = Registry("hypergradient method", name_attr="method_name")
MODELS = Registry("model")
NETWORKS = Registry("network")
