"""Genotype files: ``{label: op}`` plus everything needed to rebuild the network.

``genotype.yaml`` holds the network builder and its options, the resolved space of each
module (so no other file is needed), and the choices::

    nas_llv: 0.1.0
    network: {type: ruas, variant: ruas}
    spaces: {scene: {...}, denoise: {...}}
    genotype: {scene.c1_d: skip, scene.c1_r: resconv_1x1, ...}
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nas_llv import __version__
from nas_llv.config import ConfigError, check_finite, load_yaml
from nas_llv.atomic import write_yaml
from nas_llv.space.models import build_fixed_network, resize_space
from nas_llv.space.ops import canonical_op
from nas_llv.registry import MODELS, NETWORKS
from nas_llv.layout import GENOTYPE, RunLayout
from nas_llv.space.spec import SpaceSpec, parse_space, space_to_dict


@dataclass(frozen=True)
class Genotype:
    network: dict[str, Any]
    spaces: dict[str, SpaceSpec]
    choices: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)

    def build(self, channels: Mapping[str, int] | int | None = None,
              repeat: Mapping[str, int] | int | None = None) -> nn.Module:
        """The derived network; ``channels``/``repeat`` resize every module (int) or named ones."""
        spaces = {k: resize_space(s, _pick(channels, k), _pick(repeat, k)) for k, s in self.spaces.items()}
        return build_fixed_network(self.network, spaces, self.choices)

    def describe(self, channels: Mapping[str, int] | int | None = None,
                 repeat: Mapping[str, int] | int | None = None) -> str:
        """The network in words, at the size ``build`` would give it, e.g. 'ruas (variant ruas):
        scene ruas_scene at 3 channels x 3, denoise ruas_denoise at 16 channels x 5'."""
        options = ", ".join(f"{k} {v}" for k, v in self.network.items() if k != "type")
        modules = ", ".join(
            f"{name} {s.name} at {_pick(channels, name) or s.cell.channels} channels x {_pick(repeat, name) or s.repeat}"
            for name, s in self.spaces.items())
        return f"{self.network.get('type', 'single')}{f' ({options})' if options else ''}: {modules}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "nas_llv": __version__,
            "network": dict(self.network),
            "spaces": {k: space_to_dict(s) for k, s in self.spaces.items()},
            "genotype": dict(self.choices),
            **({"meta": self.meta} if self.meta else {}),
        }

    def save(self, path: str | Path) -> Path:
        return write_yaml(path, self.to_dict())


def _pick(value: Mapping[str, int] | int | None, key: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return value.get(key)


def genotype_scale(genotype: Genotype) -> int:
    """How many times larger than its input the network's output is: 1 for enhancement networks,
    2 or 4 for super-resolution ones (the product of its modules' ``scale`` model options; a model
    that takes a scale but does not record one builds at its own default)."""
    return math.prod(_model_scale(space.model) for space in genotype.spaces.values())


def _model_scale(model: Mapping[str, Any]) -> int:
    kind = model.get("type")
    param = inspect.signature(MODELS.get(kind)).parameters.get("scale") if kind in MODELS else None
    return 1 if param is None else int(model.get("scale", param.default))


def load_genotype(path: str | Path) -> Genotype:
    """Read a genotype file written by ``Genotype.save`` (errors name the file and key)."""
    return genotype_from_dict(load_yaml(path), str(path))


def find_genotype(target: str | Path) -> Path:
    """A genotype file, or a run folder holding ``genotype.yaml``."""
    path = Path(target)
    if path.is_dir():
        path = RunLayout(path).genotype_path
        if not path.is_file():
            raise ConfigError(f"{target}: no {GENOTYPE} in this folder (has the search finished?)")
    elif not path.is_file():
        raise ConfigError(f"{target}: no such genotype file or run folder")
    return path


def with_variant(genotype: Genotype, variant: str | None, where: str = "variant") -> Genotype:
    """The genotype with its network's variant replaced by the ``with_variant`` hook of its network
    builder (``NETWORKS``; e.g. ruas_s drops the RUAS denoiser's space and choices).

    ``where`` names the setting in errors (``train.variant``); a network without variants refuses
    any (one line).
    """
    if variant is None or genotype.network.get("variant") == variant:
        return genotype
    kind = genotype.network.get("type", "single")
    hook = getattr(NETWORKS.get(kind), "with_variant", None) if kind in NETWORKS else None
    if hook is None:
        raise ConfigError(f"{where}={variant}: the genotype's network '{kind}' has no variants; leave {where} unset")
    network, spaces, choices = hook(genotype.network, genotype.spaces, genotype.choices, variant, where)
    return Genotype(dict(network), dict(spaces), dict(choices), dict(genotype.meta))


def genotype_from_dict(data: Mapping[str, Any], source: str = "<genotype>") -> Genotype:
    """A Genotype from the mapping ``Genotype.to_dict`` gives (errors name ``source`` and the key)."""
    for key in ("spaces", "genotype"):
        if not isinstance(data.get(key), dict):
            raise ConfigError(f"{source}: missing or malformed '{key}' (expected a mapping); is this a genotype file?")
    spaces = {k: parse_space(v, f"{source}: spaces.{k}") for k, v in data["spaces"].items()}
    parts = {n for s in spaces.values() for names in s.parts().values() for n in names}
    choices = {}
    for label, op in data["genotype"].items():
        try:
            choices[str(label)] = str(op) if str(op) in parts else canonical_op(str(op))
        except ConfigError as exc:
            raise ConfigError(f"{source}: genotype.{label}: {exc}") from None
    network = data.get("network") or {"type": "single"}
    if not isinstance(network, dict):
        raise ConfigError(f"{source}: network: expected a mapping such as {{type: ruas, variant: ruas}}, "
                          f"got {network!r}")
    check_finite(network, f"{source}: network")
    _check_labels(choices, declared_labels(network, spaces), source)
    return Genotype(dict(network), spaces, choices, dict(data.get("meta") or {}))


def random_choices(labels: Mapping[str, Sequence[str]], generator: torch.Generator) -> dict[str, str]:
    """One choice per label, drawn uniformly from its candidates, each label independently (so a
    genotype of the space is drawn uniformly); ``generator`` makes the draw repeatable."""
    return {label: cands[int(torch.randint(len(cands), (), generator=generator))] for label, cands in labels.items()}


def module_prefix(network: Mapping[str, Any], name: str) -> str:
    """The label prefix of module ``name``: none in a 'single' network, ``name.`` in the others."""
    return "" if network.get("type", "single") == "single" else f"{name}."


def declared_labels(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec]) -> dict[str, tuple[str, ...]]:
    """Every label the spaces declare, prefixed as the network names them -> candidates."""
    return {label: cands for name, space in spaces.items()
            for label, cands in space.labels(module_prefix(network, name)).items()}


def _check_labels(choices: Mapping[str, str], declared: Mapping[str, Any], source: str) -> None:
    """Choices for labels no space declares are an error (a label without a choice fails at build:
    a genotype whose variant drops a module, e.g. ruas_s, may keep its space and choose nothing in it)."""
    unknown = [label for label in choices if label not in declared]
    if unknown:
        raise ConfigError(f"{source}: genotype: unknown labels {_few(unknown)}; the spaces declare: "
                          f"{_few(list(declared), 12)}")


def _few(items: list[str], n: int = 6) -> str:
    return "[" + ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "") + "]"
