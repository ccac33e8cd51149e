"""All of nas-llv's use of NNI, in one place.

NNI 3.0 (archived) supplies the search-space bookkeeping: ``LayerChoice`` holds an edge's
candidates under a label (equal labels are one shared choice), ``ModelSpace.simplify()``
lists the choices, and ``freeze()`` turns a supernet into the chosen network. Choices must
be created inside a ModelSpace's ``__init__``, so supernets are built through ``Space``,
which calls a factory in that context. Nothing else in nas-llv imports nni.

NNI (with lightning) takes seconds to import, so it is imported on first use: a derived network,
and every command that only checks its input, never loads it.
"""
from __future__ import annotations

import contextvars
import functools
import logging
import warnings
from typing import Any, Callable, Iterator, Mapping

from torch import nn


@functools.cache
def _nni() -> Any:
    """``nni.nas.nn.pytorch``, imported once, quietly."""
    with warnings.catch_warnings():
        # NNI 3.0 predates some torch module types and warns about each at import
        warnings.simplefilter("ignore")
        import nni.nas.nn.pytorch as nn_pytorch
    logging.getLogger("nni").setLevel(logging.ERROR)
    global _CHOICES
    _CHOICES = (PlainChoice, nn_pytorch.LayerChoice)
    return nn_pytorch


_PLAIN: contextvars.ContextVar[bool] = contextvars.ContextVar("nas_llv_plain_choices", default=False)


class PlainChoice(nn.ModuleDict):
    """The same candidates without NNI's bookkeeping: for inspecting a supernet (its weights, its
    parameters) where NNI's labels are not needed and its seconds-long import is not wanted."""

    def __init__(self, candidates: Mapping[str, nn.Module], label: str) -> None:
        super().__init__(dict(candidates))
        self.label = label

    @property
    def names(self) -> list[str]:
        return list(self.keys())


def choice(candidates: Mapping[str, nn.Module], label: str) -> nn.Module:
    """A labelled choice among named candidate modules (NNI ``LayerChoice``; a ``PlainChoice``
    inside ``plain``)."""
    if _PLAIN.get():
        return PlainChoice(candidates, label)
    return _nni().LayerChoice(dict(candidates), label=label)


# The module types that are choices: ``PlainChoice``, and NNI's ``LayerChoice`` once ``_nni`` imported it
# (no LayerChoice exists before). A plain global, so that torch.compile reads it inside a supernet's forward
# (tracing into ``_nni``'s import and its warning filters would break the graph; docs/speed.md).
_CHOICES: tuple[type, ...] = (PlainChoice,)


def is_choice(module: nn.Module) -> bool:
    return isinstance(module, _CHOICES)


def plain(factory: Callable[[], nn.Module]) -> nn.Module:
    """``factory()`` with its choices built as ``PlainChoice``: the supernet's modules and weights,
    without NNI (no labels to simplify, nothing to freeze)."""
    token = _PLAIN.set(True)
    try:
        return factory()
    finally:
        _PLAIN.reset(token)


def candidates(module: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) pairs of a choice, in declaration order."""
    for name in module.names:
        yield name, module[name]


def Space(factory: Callable[[], nn.Module]) -> nn.Module:  # noqa: N802  (builds an instance of a class)
    """Root of a supernet: calls ``factory()`` where NNI can register its choices.

    ``space.net`` is the network itself; the wrapper exists for ``labels`` and ``freeze``.
    """
    return _space_class()(factory)


@functools.cache
def _space_class() -> type:
    class _Space(_nni().ModelSpace):
        def __init__(self, factory: Callable[[], nn.Module]) -> None:
            super().__init__()
            self.net = factory()

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return self.net(*args, **kwargs)

    return _Space


def labels(space: Space) -> dict[str, list[Any]]:
    """Label -> candidate names, as NNI sees the space."""
    return {label: list(c.values) for label, c in space.simplify().items()}


def freeze(space: Space, genotype: Mapping[str, str]) -> nn.Module:
    """The fixed network with each label's chosen op (shares weights with the supernet)."""
    return space.freeze(dict(genotype)).net
