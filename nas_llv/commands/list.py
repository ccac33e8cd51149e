"""``nas-llv list ops|spaces|parts|losses|strategies|hypergrads|extensions|datasets|networks|engines``."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS

KINDS = ("ops", "spaces", "parts", "losses", "strategies", "hypergrads", "extensions", "datasets", "networks", "engines")
REGISTRIES = {"losses": "LOSSES", "strategies": "STRATEGIES", "hypergrads": "HYPERGRADS", "extensions": "EXTENSIONS",
              "datasets": "DATASETS", "networks": "NETWORKS", "engines": "ENGINES"}


def table(kind: str) -> list[str]:
    """The lines ``nas-llv list KIND`` prints; only what that kind needs is imported."""
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

    reg = getattr(registry, REGISTRIES[kind])
    return [line for name in reg.names() for line in entry_lines(reg, name)]


def entry_lines(reg: object, name: str) -> list[str]:
    """``name`` with the first line of its docstring, then its recipe keys and their defaults."""
    import dataclasses

    doc = (getattr(reg.get(name), "__doc__", None) or "").strip().splitlines()  # type: ignore[attr-defined]
    lines = [f"{name:20s} {doc[0].strip() if doc else ''}".rstrip()]
    options = reg.config_of(name)  # type: ignore[attr-defined]
    fields = dataclasses.fields(options) if options is not None else ()
    if fields:
        shown = ", ".join(f"{f.name}={_default(f)}" for f in fields)
        lines.append(f"{'':20s} keys: {shown}")
    return lines


def _default(field: object) -> str:
    import dataclasses

    if field.default is not dataclasses.MISSING:  # type: ignore[attr-defined]
        return repr(field.default)  # type: ignore[attr-defined]
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[attr-defined]
        return repr(field.default_factory())  # type: ignore[attr-defined]
    return "(required)"


def run(args: argparse.Namespace) -> int:
    for line in table(args.kind):
        print(line)
    return 0


@COMMANDS.register("list")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered ops, spaces, losses, strategies, ...",
                       description="List what nas-llv knows by name.")
    p.add_argument("kind", choices=KINDS)
    p.set_defaults(run=run)
