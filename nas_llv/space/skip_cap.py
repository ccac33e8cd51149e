"""P-DARTS' cap on skip ops at derive time (Chen et al., ICCV 2019, "Progressive Differentiable
Architecture Search"; docs/remedies.md).

A collapsing DARTS search drifts towards parameter-free skip connections (``ops.SKIP_OPS``), and
its argmax genotype is then a cell of identities. P-DARTS keeps at most M skip ops per cell: when
more edges of one cell pick a skip op, the M with the highest skip weight keep it and the others
take their best non-skip op. A "cell" is one cell instance: a module whose space shares one
architecture over its stages (labels ``scene.c1_d``) is one cell, a space with ``share_arch:
false`` one cell per stage (``scene.s0.c1_d``, ``scene.s1.c1_d``, ...). Part choices
(``upscaler``) are not cell edges and are never changed.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from nas_llv.space.genotype import module_prefix
from nas_llv.space.ops import SKIP_OPS
from nas_llv.space.spec import SpaceSpec, edge_label
from nas_llv.space.supernet import Probs



def cell_groups(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec]) -> list[list[str]]:
    """The edge labels of each cell instance, as the network names them (see the module docstring)."""
    groups = []
    for name, space in spaces.items():
        prefix = module_prefix(network, name)
        for stage in (None,) if space.share_arch else range(space.repeat):
            groups.append([edge_label(prefix, e.label, stage) for e in space.cell.searchable])
    return groups


def cap_skips(choices: Mapping[str, str], probs: Probs, groups: Sequence[Sequence[str]],
              max_skip: int) -> dict[str, str]:
    """label -> its new op, for the edges that lose their skip op: in each group, the edges whose
    choice is a skip op beyond the ``max_skip`` of highest skip weight (ties: the earlier label
    keeps it) take their highest-weighted non-skip candidate. An edge with no non-skip candidate
    keeps its skip and uses up one of the ``max_skip``."""
    changes = {}
    for labels in groups:
        skipping = [lab for lab in labels if choices.get(lab) in SKIP_OPS]
        forced = [lab for lab in skipping if _best_other(probs[lab]) is None]
        movable = sorted((lab for lab in skipping if lab not in forced),
                         key=lambda lab: -probs[lab][choices[lab]])  # stable: label order breaks ties
        for lab in movable[max(0, max_skip - len(forced)):]:
            changes[lab] = _best_other(probs[lab])
    return changes


def _best_other(probs: Mapping[str, float]) -> str | None:
    """The highest-weighted candidate that is not a skip op (None when there is none)."""
    others = [op for op in probs if op not in SKIP_OPS]
    return max(others, key=lambda op: probs[op]) if others else None


def capped(choices: Mapping[str, str], probs: Probs, network: Mapping[str, Any],
           spaces: Mapping[str, SpaceSpec], max_skip: int) -> tuple[dict[str, str], dict[str, Any]]:
    """``choices`` with at most ``max_skip`` skip ops per cell, and the record for the genotype's meta:
    ``{max_skip: {max: M, changed: {label: {from: skip, to: op}}}}``."""
    changes = cap_skips(choices, probs, cell_groups(network, spaces), max_skip)
    changed = {lab: {"from": choices[lab], "to": op} for lab, op in changes.items()}
    return {**choices, **changes}, {"max_skip": {"max": max_skip, "changed": changed}}
