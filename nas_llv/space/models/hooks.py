"""The optional hooks of a model or network, as Protocols: what the rest of nas-llv asks of them.

A model (``MODELS``) or network (``NETWORKS``) declares a hook by defining its members; nothing
is inherited or registered. Callers test ``isinstance(obj, Hook)`` (the Protocols are
runtime-checkable: the check looks at the members' presence, not their signatures), and a
network that declares none gets the plain behaviour each docstring names. ``RUAS``
(``space/models/networks.py``) declares all the network hooks; ``trico_llsr``/``collaba_llsr``
(``space/models/llsr.py``) declare ``PartChoices``.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

__all__ = ["EntryOutputs", "IlluminationModules", "ObjectiveModules", "PartChoices", "PartialForward"]


@runtime_checkable
class PartChoices(Protocol):
    """A model (class) with sub-network choices besides its cells' edges (read by
    ``space.spec.model_parts``; without it, a model adds no part labels)."""

    @staticmethod
    def part_choices(options: Mapping[str, Any]) -> Mapping[str, tuple[str, ...]]:
        """Part label (unprefixed) -> candidate names, from the model options of a space."""
        ...


@runtime_checkable
class IlluminationModules(Protocol):
    """A network naming its illumination submodules: ω_i of strategy ``hyper``'s S2 (TriCo,
    CollaBA). Without it, the recipe must set ``search.illum_modules``."""

    illumination_modules: tuple[str, ...]  # top-level submodule (attribute) names


@runtime_checkable
class ObjectiveModules(Protocol):
    """A network whose retraining entries each train one submodule (``retrain.trainer``): an entry
    whose submodule is None here is refused, and ``--init`` leaves the submodules the objective
    trains fresh. Without it, every entry trains the whole network."""

    objective_modules: Mapping[str, str]  # objective entry -> submodule attribute


@runtime_checkable
class EntryOutputs(Protocol):
    """A network whose retraining entries in ``own_output_entries`` see outputs of their own
    instead of the full forward's (RUAS: ``task`` sees the denoiser on the detached u).
    Without it, every entry sees the full forward's outputs."""

    own_output_entries: frozenset[str]

    def entry_outputs(self, entry: str, out: Mapping[str, Any],
                      batch: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """What ``entry`` sees, from ``out`` (of ``forward`` or ``partial_forward``) and the batch."""
        ...


@runtime_checkable
class PartialForward(Protocol):
    """A network with a cheaper forward that lacks ``full_output_keys`` (RUAS: the scene module
    alone, no ``x``); retraining uses it when no entry that sees the full outputs reads those keys.
    Without it, retraining always runs the full forward."""

    full_output_keys: frozenset[str]

    def partial_forward(self, y: Any) -> Mapping[str, Any]:
        """y: (N, 3, H, W) in [0, 1] -> the outputs of ``forward`` less ``full_output_keys``."""
        ...
