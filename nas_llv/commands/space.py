"""``nas-llv space show FILE`` and ``nas-llv space draw FILE -o cell.png``."""
from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from nas_llv.registry import COMMANDS

if TYPE_CHECKING:
    from nas_llv.space.spec import SpaceSpec


def describe(spec: SpaceSpec) -> list[str]:
    """Human-readable summary: nodes, edges, candidates, space size, supernet params."""
    from nas_llv.space import nni_bridge
    from nas_llv.space.models import build_searchable
    from nas_llv.space.supernet import weight_parameters

    cell = spec.cell
    lines = [f"space {spec.name}: {spec.description}".rstrip(": "),
             f"  cell: {cell.channels} channels, activation {cell.activation.get('type')}, "
             f"repeat {spec.repeat} ({'one shared architecture' if spec.share_arch else 'one architecture per repeat'}), "
             f"model {spec.model.get('type')}",
             "  nodes:"]
    lines += [f"    {n.name:6s} {n.combine}{' (output)' if n.output else ''}, {cell.width(n.name)} ch" for n in cell.nodes]
    lines.append("  edges:")
    for e in cell.edges:
        what = (f"{len(cell.candidates(e))} candidates: {', '.join(cell.candidates(e))}" if e.label
                else f"fixed {e.op or 'identity'}")
        lines.append(f"    {e.src:>4s} -> {e.dst:<4s} {e.label or '-':6s} {what}")
    for label, names in spec.parts().items():
        lines.append(f"  part {label}: {len(names)} candidates: {', '.join(names)}")
    supernet = nni_bridge.plain(lambda: build_searchable(spec))  # the weights alone: no need to load NNI
    n_weights = sum(p.numel() for p in weight_parameters(supernet))
    lines += [f"  labels: {len(spec.labels())}; architectures in the space: {spec.size():,}",
              f"  supernet weights: {n_weights:,} parameters"]
    return lines


def run_show(args: argparse.Namespace) -> int:
    from nas_llv.space.spec import load_space

    print("\n".join(describe(load_space(args.file))))
    return 0


def run_draw(args: argparse.Namespace) -> int:
    from nas_llv.space.draw import draw_cell
    from nas_llv.paths import check_output_file
    from nas_llv.space.spec import load_space

    check_output_file(args.output, "--output")
    spec = load_space(args.file)
    out = draw_cell(spec.cell, args.output, title=f"{spec.name}: {spec.description}")
    print(f"wrote {out}")
    return 0


@COMMANDS.register("space")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("space", help="inspect a search space file", description="Inspect a search space.")
    ssub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = ssub.add_parser("show", help="nodes, edges, candidates, space size, supernet params")
    show.add_argument("file", help="a space YAML file or a shipped space name (see `nas-llv list spaces`)")
    show.set_defaults(run=run_show)
    draw = ssub.add_parser("draw", help="draw the cell DAG to a PNG")
    draw.add_argument("file", help="a space YAML file or a shipped space name")
    draw.add_argument("-o", "--output", default="cell.png", help="output PNG (default: cell.png)")
    draw.set_defaults(run=run_draw)
