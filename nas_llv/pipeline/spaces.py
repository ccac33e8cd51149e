"""Search spaces and what the package knows by name, as the pipeline's steps: ``space_show``
summarises a space (nodes, edges, candidates, size, supernet weights), ``space_draw`` draws its
cell, ``listing`` lists ops, spaces and the registries. No torch at import: ``KINDS`` is read by
an argument parser."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas_llv.space.spec import SpaceSpec

KINDS = ("ops", "spaces", "parts", "losses", "strategies", "hypergrads", "extensions", "datasets", "networks", "engines")
_REGISTRIES = {"losses": "LOSSES", "strategies": "STRATEGIES", "hypergrads": "HYPERGRADS", "extensions": "EXTENSIONS",
               "datasets": "DATASETS", "networks": "NETWORKS", "engines": "ENGINES"}


@dataclass(frozen=True)
class SpaceSummary:
    """A space (``spec``) and the weights of its supernet."""

    spec: SpaceSpec
    supernet_params: int

    @property
    def lines(self) -> list[str]:
        """Human-readable: nodes, edges, candidates, parts, the space's size, the supernet's weights."""
        spec, cell = self.spec, self.spec.cell
        lines = [f"space {spec.name}: {spec.description}".rstrip(": "),
                 f"  cell: {cell.channels} channels, activation {cell.activation.get('type')}, "
                 f"repeat {spec.repeat} ({'one shared architecture' if spec.share_arch else 'one architecture per repeat'}), "
                 f"model {spec.model.get('type')}",
                 "  nodes:"]
        lines += [f"    {n.name:6s} {n.combine}{' (output)' if n.output else ''}, {cell.width(n.name)} ch"
                  for n in cell.nodes]
        lines.append("  edges:")
        for e in cell.edges:
            what = (f"{len(cell.candidates(e))} candidates: {', '.join(cell.candidates(e))}" if e.label
                    else f"fixed {e.op or 'identity'}")
            lines.append(f"    {e.src:>4s} -> {e.dst:<4s} {e.label or '-':6s} {what}")
        for label, names in spec.parts().items():
            lines.append(f"  part {label}: {len(names)} candidates: {', '.join(names)}")
        return lines + [f"  labels: {len(spec.labels())}; architectures in the space: {spec.size():,}",
                        f"  supernet weights: {self.supernet_params:,} parameters"]


def space_show(space: str | Path) -> SpaceSummary:
    """``space`` (a space YAML file or a shipped space's name) and its supernet's weight count."""
    from nas_llv.space import nni_bridge
    from nas_llv.space.models import build_searchable
    from nas_llv.space.spec import load_space
    from nas_llv.space.supernet import weight_parameters

    spec = load_space(str(space))
    supernet = nni_bridge.plain(lambda: build_searchable(spec))  # the weights alone: no need to load NNI
    return SpaceSummary(spec, sum(p.numel() for p in weight_parameters(supernet)))


def space_draw(space: str | Path, output: str | Path) -> Path:
    """Draw ``space``'s cell DAG to the PNG ``output``; returns the file written."""
    from nas_llv.paths import check_output_file
    from nas_llv.space.draw import draw_cell
    from nas_llv.space.spec import load_space

    check_output_file(output, "--output")
    spec = load_space(str(space))
    return draw_cell(spec.cell, output, title=f"{spec.name}: {spec.description}")


def listing(kind: str) -> list[str]:
    """The lines ``nas-llv list KIND`` prints (``KINDS``); only what that kind needs is imported."""
    if kind == "ops":
        from nas_llv.space.ops import OPS, PAPER_NAMES

        return [f"{n:20s} {PAPER_NAMES[n]}" for n in OPS]
    if kind == "spaces":
        from nas_llv.space.spec import load_space, shipped_spaces

        return [f"{name:18s} {load_space(name).description}" for name in shipped_spaces()]
    if kind == "parts":  # the sub-network choices of the shipped spaces' models
        from nas_llv.space.spec import load_space, shipped_spaces

        return [f"{name:18s} {label}: {', '.join(names)}" for name in shipped_spaces()
                for label, names in load_space(name).parts().items()]
    from nas_llv import registry
    from nas_llv.config import ConfigError

    if kind not in _REGISTRIES:
        raise ConfigError(f"list {kind}: not a kind; allowed: {', '.join(KINDS)}")
    reg = getattr(registry, _REGISTRIES[kind])
    return [line for name in reg.names() for line in _entry_lines(reg, name)]


def _entry_lines(reg: Any, name: str) -> list[str]:
    """``name`` with the first line of its docstring, then its recipe keys and their defaults."""
    entry = reg.get(name)
    doc = (getattr(entry, "__doc__", None) or "").strip().splitlines()
    kind = getattr(entry, "kind", None)  # a strategy's loop: one_shot or multi_trial
    lines = [f"{name:20s} {doc[0].strip() if doc else ''}{f' [{kind}]' if isinstance(kind, str) else ''}".rstrip()]
    options = reg.config_of(name)
    fields = dataclasses.fields(options) if options is not None else ()
    if fields:
        lines.append(f"{'':20s} keys: {', '.join(f'{f.name}={_default(f)}' for f in fields)}")
    return lines


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return repr(field.default)
    if field.default_factory is not dataclasses.MISSING:
        return repr(field.default_factory())
    return "(required)"
