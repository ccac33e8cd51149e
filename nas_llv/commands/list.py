"""``nas-llv list ops|spaces|losses|strategies|hypergrads|datasets|networks``."""
from __future__ import annotations

import argparse


def _tables() -> dict[str, list[str]]:
    from nas_llv import registry
    from nas_llv.space.ops import OPS, PAPER_NAMES
    from nas_llv.space.spec import load_space, shipped_spaces

    spaces = []
    for name in shipped_spaces():
        spec = load_space(name)
        spaces.append(f"{name:18s} {spec.description}")
    return {
        "ops": [f"{n:20s} {PAPER_NAMES[n]}" for n in OPS],
        "spaces": spaces,
        "losses": registry.LOSSES.names(),
        "strategies": registry.STRATEGIES.names(),
        "hypergrads": registry.HYPERGRADS.names(),
        "datasets": registry.DATASETS.names(),
        "networks": registry.NETWORKS.names(),
    }



KINDS = ("ops", "spaces", "losses", "strategies", "hypergrads", "datasets", "networks")


def run(args: argparse.Namespace) -> int:
    for line in _tables()[args.kind]:
        print(line)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered ops, spaces, losses, strategies, ...",
                       description="List what nas-llv knows by name.")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(run=run)
