"""What a search extension is: an object the search loop calls at fixed moments (its hooks), switched
on by one key of the recipe's ``search:`` section (docs/extensions.md).

Modelled on Lightning's ``Callback``: every hook has a default that does nothing, so an extension
writes only the moments it acts in; ``state_key`` names its checkpoint entry, and ``should_stop``
asks the loop to end the search after the epoch (early stopping). A term of the upper loss that
depends on α alone goes onto the levels as a penalty (``Level.penalties``, ``attach_penalty``), as
NNI's one-shot strategies take ``penalty=``. The loop (``search/loop.py``) knows no extension by
name: it builds those the recipe switches on (``build``) and calls each hook of each, in ``order``.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, ClassVar, Mapping, Protocol

from torch import nn

from nas_llv.registry import EXTENSIONS
from nas_llv.search.level import Batch, Level, Scalar
from nas_llv.space.supernet import Probs

Choices = dict[str, str]                   # label -> op


class Search(Protocol):
    """What an extension sees of the running search (the loop's ``Searcher``)."""

    net: nn.Module                         # the supernet
    levels: dict[str, Level]               # empty until the strategy built them (``attach``)
    strategy: Any                          # ``search.strategy.Strategy``
    network_cfg: dict[str, Any]            # the network builder's config
    spaces: Mapping[str, Any]              # module -> ``SpaceSpec``
    recipe: Any                            # the whole recipe (seed, search.epochs, ...)

    def refine(self, choices: Choices, probs: Probs) -> tuple[Choices, dict[str, Any]]:
        """``choices`` derived from α through every extension's ``derive``, and their meta."""


class Extension:
    """One search extension; ``options`` is its recipe key's value (never its ``off`` value).

    Hooks, in the order a search meets them:

    - ``setup(search)``: the supernet and the strategy are built, the levels not yet;
    - ``attach(search)``: the levels are built (penalties, overrides of their steps);
    - ``attach_run(run)``: a run folder is attached, new or resumed (files of its own);
    - ``before_iteration(epoch)``: before each iteration of the schedule;
    - ``columns(name, level, batch)``: the trajectory columns of each row (level ``name``'s step
      just taken, on validation ``batch``);
    - ``end_epoch(epoch)``: after each epoch's validation; may set ``should_stop``;
    - ``derive(choices, probs)``: each architecture derived from α (the best, the final, an
      earlier one): (choices, meta entries);
    - ``final(genotype)``: the genotype the search ends with (``genotype.yaml``), before ``describe``;
    - ``describe(genotype)``: every genotype the search writes (entries of its meta);
    - ``state_dict()``/``load_state_dict(state)``: its checkpoint entry ``state_key``.
    """

    key: ClassVar[str]                      # its recipe key, search.<key> (set by ``register``)
    options_type: ClassVar[Any] = None      # that key's type: an options dataclass, or a plain type
    off: ClassVar[Any] = None               # the key's default, which leaves the extension out
    order: ClassVar[int] = 100              # where its hooks run among the others' (lower first)
    state_key: ClassVar[str | None] = None  # its checkpoint entry (None: it keeps nothing)

    def __init__(self, options: Any) -> None:
        self.options = options

    @classmethod
    def value_type(cls) -> Any:
        """The type of its recipe key: ``options_type``, or also null where null is ``off``."""
        return typing.Optional[cls.options_type] if cls.off is None else cls.options_type

    @classmethod
    def check(cls, options: Any, search: Any) -> None:
        """Raise ValueError where ``options`` mean nothing with the rest of the ``search:`` section
        (``recipe.SearchConfig``); called when a recipe that switches the extension on is loaded."""

    @property
    def should_stop(self) -> bool:
        """True: end the search after this epoch (checked after ``end_epoch``)."""
        return False

    def setup(self, search: Search) -> None: ...

    def attach(self, search: Search) -> None: ...

    def attach_run(self, run: Any) -> None: ...

    def before_iteration(self, epoch: int) -> None: ...

    def columns(self, name: str, level: Level, batch: Batch) -> dict[str, Scalar]:
        return {}

    def end_epoch(self, epoch: int) -> None: ...

    def derive(self, choices: Choices, probs: Probs) -> tuple[Choices, dict[str, Any]]:
        return choices, {}

    def final(self, genotype: Any) -> Any:
        return genotype

    def describe(self, genotype: Any) -> Any:
        return genotype

    def state_dict(self) -> Any:
        return None

    def load_state_dict(self, state: Any) -> None:
        """``state``: this extension's checkpoint entry (None: a checkpoint without it)."""


def register(key: str, options: Any, off: Any = None) -> Callable[[type[Extension]], type[Extension]]:
    """``@register(key, options)`` on an ``Extension``: the recipe's ``search.<key>`` takes a value
    of type ``options`` (an options dataclass, written as a section; or a plain type), and ``off``,
    its default, leaves the extension out. An options dataclass is registered as its ``config``
    (``nas-llv list extensions``)."""
    def deco(cls: type[Extension]) -> type[Extension]:
        cls.options_type, cls.off = options, off
        return EXTENSIONS.register(key, config=options if dataclasses.is_dataclass(options) else None)(cls)

    return deco


def build(values: Mapping[str, Any]) -> list[Extension]:
    """The extensions ``values`` (key -> recipe value, ``SearchConfig.extensions``) switch on, in ``order``."""
    on = [EXTENSIONS.get(key) for key, value in values.items() if value != EXTENSIONS.get(key).off]
    return [cls(values[cls.key]) for cls in sorted(on, key=lambda cls: (cls.order, cls.key))]


def drawn_not_derived(key: str, search: Any) -> None:
    """Refuse ``key`` of the ``search:`` section (``recipe.SearchConfig``), which acts on learned α,
    with a multi-trial strategy (random), whose candidates are drawn."""
    if search.kind == "multi_trial":
        raise ValueError(f"{key} does not apply to strategy {search.strategy}: its candidates are drawn, not "
                         f"derived from α; leave {key} unset")
