"""Build a network from a space: the supernet (mixed edges, α) or a derived net (a genotype).

Single-space models are registered in ``MODELS`` with the signature
``(space, edges, prefix='', **options)``; the space's ``model:`` key names one and gives its
options. ``build_supernet`` wraps construction in NNI's ``Space`` so labels register.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
from typing import Any, Mapping

import torch
from torch import nn

from nas_llv.space import nni_bridge
from nas_llv.config import ConfigError
from nas_llv.registry import MODELS
from nas_llv.space.spec import SpaceSpec
from nas_llv.space.supernet import ArchParams, Cell, EdgeFactory, FixedEdges, MixedEdges

log = logging.getLogger(__name__)


@MODELS.register("cell_stack")
class CellStack(nn.Module):
    """``repeat`` cells in sequence. x: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "") -> None:
        super().__init__()
        self.cells = make_cells(space, edges, prefix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for cell in self.cells:
            x = cell(x)
        return x


def make_cells(space: SpaceSpec, edges: EdgeFactory, prefix: str = "") -> nn.ModuleList:
    """One Cell per repeat, sharing labels when ``space.share_arch`` (own weights either way)."""
    return nn.ModuleList(
        Cell(space.cell, edges, prefix, None if space.share_arch else i) for i in range(space.repeat)
    )


def part_names(model: str, key: str, value: Any, table: Mapping[str, Any]) -> tuple[str, ...]:
    """The candidate names an option gives (a name or a list); ConfigError lists the allowed ones."""
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{model}: option '{key}' must be a part name or a non-empty list of them, got {value!r}; "
                          f"allowed: {', '.join(table)}")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"{model}: unknown {key} '{unknown[0]}'; allowed: {', '.join(table)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{model}: option '{key}' repeats a candidate: {list(names)}")
    return names


def resize_space(space: SpaceSpec, channels: int | None = None, repeat: int | None = None) -> SpaceSpec:
    """The same space at another width or number of stages (retraining at full size)."""
    cell = space.cell if channels is None else dataclasses.replace(space.cell, channels=channels)
    if repeat is not None and not space.share_arch and repeat != space.repeat:
        raise ConfigError(f"space '{space.name}' keeps one architecture per stage ({space.repeat} stages); "
                          f"it cannot be rebuilt with {repeat}. Use share_arch: true to vary the depth.")
    return dataclasses.replace(space, cell=cell, repeat=space.repeat if repeat is None else repeat)


def build_module(space: SpaceSpec, edges: EdgeFactory, prefix: str = "", **overrides: Any) -> nn.Module:
    opts = {**space.model, **overrides}
    return MODELS.get(opts.pop("type"))(space, edges, prefix=prefix, **opts)


def build_searchable(space: SpaceSpec, prefix: str = "", merge_edges: bool = True, relaxation: str = "softmax",
                     **overrides: Any) -> nn.Module:
    """A supernet module with its own ``.arch`` (ArchParams, mixing with ``relaxation``); ``merge_edges``:
    each mixed edge of linear ops runs as one merged convolution (``MixedEdge.merge``, exact). Call
    inside ``nni_bridge.Space``."""
    arch = ArchParams(relaxation)
    net = build_module(space, MixedEdges(arch, merge_edges), prefix, **overrides)
    net.arch = arch
    return net


def build_supernet(space: SpaceSpec, merge_edges: bool = True, relaxation: str = "softmax",
                   **overrides: Any) -> nni_bridge.Space:
    """The NNI-rooted supernet of one space; ``.net`` is the network."""
    return nni_bridge.Space(lambda: build_searchable(space, "", merge_edges, relaxation, **overrides))


def build_derived(space: SpaceSpec, genotype: Mapping[str, str], prefix: str = "", **overrides: Any) -> nn.Module:
    """The fixed network a genotype names, built from the op table alone."""
    return build_module(space, FixedEdges(genotype), prefix, **overrides)


def fit_scale(spaces: Mapping[str, SpaceSpec], scale: int) -> dict[str, SpaceSpec]:
    """Spaces whose model takes ``scale`` get ``data.scale`` (one key sets the data and the
    up-scaler, and the genotype records it); any other model needs ``data.scale: 1``."""
    out = {}
    for name, space in spaces.items():
        kind = space.model.get("type")
        takes = kind in MODELS and "scale" in inspect.signature(MODELS.get(kind)).parameters
        if takes:
            if space.model.get("scale") != scale:
                log.info("space '%s': model scale %s set to data.scale=%d", space.name, space.model.get("scale"), scale)
            out[name] = dataclasses.replace(space, model={**space.model, "scale": scale})
        elif scale != 1:
            raise ConfigError(f"data.scale={scale}, but space '{space.name}' (model {kind}) does not "
                              "super-resolve; use data.scale: 1 or an SR space (trico_llsr, collaba_llsr)")
        else:
            out[name] = space
    return out
