"""Search spaces as YAML DAGs: parsing, ``extends``, and networkx validation.

A space file declares one cell (a DAG of nodes joined by edges), how many times it
repeats, whether repeats share one architecture, and which model wraps the cell stack::

    name: ruas_scene
    extends: ruas_cell.yaml          # optional: deep-merge onto another space file
    cell:
      channels: 3
      activation: {type: leaky_relu, negative_slope: 0.05}
      ops: [conv_1x1, conv_3x3, ...]  # default candidate set of searchable edges
      nodes:
        - {name: x, combine: input}
        - {name: r1, combine: residual}     # act(Σ (edge(src) + src))
        - {name: d1, combine: sum}          # act(Σ edge(src))
        - {name: out, combine: concat_fuse, output: true}   # conv1x1(cat[...]), no act
      edges:
        - {label: c1_d, from: x, to: d1}                # searchable, default ops
        - {label: c1_r, from: x, to: r1, ops: [skip, conv_3x3]}
        - {from: d1, to: out}                          # fixed identity connection
        - {from: x, to: d1, op: conv_1x1}              # fixed op, not searched
    repeat: 3
    share_arch: true
    model: {type: ruas_scene}
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from nas_llv.config import ConfigError, from_dict, load_yaml
from nas_llv.registry import MODELS
from nas_llv.space.ops import canonical_op

Combine = Literal["input", "sum", "residual", "concat_fuse"]
SHIPPED_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    combine: Combine = "sum"
    output: bool = False
    activation: bool | None = None   # default: on for sum/residual, off for input/concat_fuse
    channels: int | None = None      # default: the cell's width

    @property
    def activated(self) -> bool:
        if self.activation is not None:
            return self.activation
        return self.combine in ("sum", "residual")


@dataclass(frozen=True)
class EdgeSpec:
    src: str
    dst: str
    label: str | None = None            # searchable when set
    ops: tuple[str, ...] | None = None  # candidates (default: the cell's op set)
    op: str | None = None               # a fixed op; unlabelled edges without one are identities

    @property
    def key(self) -> str:
        return self.label or f"{self.src}_{self.dst}"


@dataclass(frozen=True)
class CellSpec:
    channels: int
    nodes: tuple[NodeSpec, ...]
    edges: tuple[EdgeSpec, ...]
    ops: tuple[str, ...] = ()
    activation: dict[str, Any] = field(default_factory=lambda: {"type": "leaky_relu", "negative_slope": 0.05})

    def width(self, node: str) -> int:
        return self.node(node).channels or self.channels

    def node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes if n.name == name)

    @property
    def input(self) -> NodeSpec:
        return next(n for n in self.nodes if n.combine == "input")

    @property
    def output(self) -> NodeSpec:
        return next(n for n in self.nodes if n.output)

    def candidates(self, edge: EdgeSpec) -> tuple[str, ...]:
        return edge.ops or self.ops

    @property
    def searchable(self) -> tuple[EdgeSpec, ...]:
        return tuple(e for e in self.edges if e.label)


@dataclass(frozen=True)
class SpaceSpec:
    name: str
    cell: CellSpec
    description: str = ""
    repeat: int = 1
    share_arch: bool = True
    model: dict[str, Any] = field(default_factory=lambda: {"type": "cell_stack"})

    def labels(self, prefix: str = "") -> dict[str, tuple[str, ...]]:
        """Architecture label -> candidate ops, as the supernet will name them."""
        out: dict[str, tuple[str, ...]] = {}
        for stage in range(1 if self.share_arch else self.repeat):
            for e in self.cell.searchable:
                out[edge_label(prefix, e.label, None if self.share_arch else stage)] = self.cell.candidates(e)
        out.update(self.parts(prefix))
        return out

    def parts(self, prefix: str = "") -> dict[str, tuple[str, ...]]:
        """Part-choice label -> candidate sub-network names, as the model declares them
        (e.g. ``upscaler``); empty for models whose only choices are cell edges."""
        return {f"{prefix}{k}": v for k, v in model_parts(self.model).items()}

    def size(self) -> int:
        """Number of distinct architectures (product of candidate counts over labels)."""
        n = 1
        for cands in self.labels().values():
            n *= len(cands)
        return n


def model_parts(model: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """A model's part choices (unprefixed label -> names), from its ``part_choices(options)``
    (``space.models.hooks.PartChoices``). The MODELS registry imports the model modules on its
    first lookup: this module imports none of them at its top (they import it)."""
    from nas_llv.space.models.hooks import PartChoices

    cls = MODELS.get(model["type"]) if model.get("type") in MODELS else None
    if not isinstance(cls, PartChoices):
        return {}
    return dict(cls.part_choices({k: v for k, v in model.items() if k != "type"}))


def edge_label(prefix: str, label: str, stage: int | None) -> str:
    return f"{prefix}{'' if stage is None else f's{stage}.'}{label}"


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def resolve_path(name_or_path: str | Path) -> Path:
    """A path as given, or the name of a shipped space (``ruas_scene`` -> search_spaces/ruas_scene.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (SHIPPED_DIR / p, SHIPPED_DIR / f"{p}.yaml"):
        if cand.is_file():
            return cand
    shipped = ", ".join(shipped_spaces())
    if p.is_dir():
        raise ConfigError(f"{name_or_path}: is a folder; give a space YAML file or a shipped space: {shipped}")
    raise ConfigError(f"{name_or_path}: no such space file; shipped spaces: {shipped}")


def shipped_spaces() -> list[str]:
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.yaml"))


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    data = load_yaml(path)
    base = data.pop("extends", None)
    if base is None:
        return data
    base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
    if not base_path.is_file():
        raise ConfigError(f"{path}: extends: no such file '{base}' (relative to {path.parent})")
    return _deep_merge(_read_raw(base_path, seen + (path.resolve(),)), data)


def _edge_from_yaml(raw: Any, where: str) -> EdgeSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with 'from' and 'to', got {raw!r}")
    raw = dict(raw)
    for yaml_key, field_name in (("from", "src"), ("to", "dst")):
        if yaml_key not in raw:
            raise ConfigError(f"{where}: missing required key '{yaml_key}'")
        raw[field_name] = raw.pop(yaml_key)
    try:
        return from_dict(EdgeSpec, raw, where)
    except ConfigError as exc:  # speak of 'from'/'to', the names the user wrote
        raise ConfigError(str(exc).replace("src", "from").replace("dst", "to")) from None


def parse_space(data: dict[str, Any], source: str = "<space>") -> SpaceSpec:
    """Typed, validated SpaceSpec from a raw mapping; errors name ``source`` and the key."""
    data = copy.deepcopy(data)
    cell = data.get("cell")
    if isinstance(cell, dict) and isinstance(cell.get("edges"), list):
        cell["edges"] = [_edge_from_yaml(e, f"{source}: cell.edges[{i}]") for i, e in enumerate(cell["edges"])]
    spec = from_dict(SpaceSpec, data, f"{source}:")
    validate_space(spec, source)
    return spec


def load_space(name_or_path: str | Path) -> SpaceSpec:
    path = resolve_path(name_or_path)
    data = _read_raw(path)
    _check_kind(data, path)
    return parse_space(data, str(path))


# top-level keys that mark another kind of nas-llv file
OTHER_KINDS = {"genotype": ("genotype", "nas-llv derive"), "search": ("recipe", "nas-llv search"),
               "losses": ("recipe", "nas-llv search"), "network": ("recipe", "nas-llv search")}


def _check_kind(data: dict[str, Any], path: Path) -> None:
    """A recipe or genotype given as a space: say what it is, not just 'unknown key'."""
    if "cell" in data:
        return
    for key, (kind, command) in OTHER_KINDS.items():
        if key in data:
            raise ConfigError(f"{path}: this is a {kind} file (it has '{key}:'), not a space file; a space "
                              f"declares a 'cell:' (see `nas-llv list spaces`); use it with `{command}`")


def space_to_dict(spec: SpaceSpec) -> dict[str, Any]:
    """Plain data that ``parse_space`` reads back (edges use 'from'/'to')."""
    out = dataclasses.asdict(spec)
    edges = []
    for e in spec.cell.edges:
        d = {"from": e.src, "to": e.dst}
        d.update({k: (list(v) if isinstance(v, tuple) else v) for k in ("label", "ops", "op") if (v := getattr(e, k)) is not None})
        edges.append(d)
    out["cell"]["edges"] = edges
    out["cell"]["ops"] = list(spec.cell.ops)
    out["cell"]["nodes"] = [{k: v for k, v in n.items() if v is not None} for n in out["cell"]["nodes"]]
    return out


def graph_of(cell: CellSpec) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from(n.name for n in cell.nodes)
    for e in cell.edges:
        g.add_edge(e.src, e.dst, key=e.key, label=e.label, ops=cell.candidates(e) if e.label else (e.op or "skip",))
    return g


def _fail(source: str, key: str, msg: str) -> None:
    raise ConfigError(f"{source}: {key}: {msg}")


def _check_nodes(cell: CellSpec, source: str) -> None:
    names = [n.name for n in cell.nodes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        _fail(source, "cell.nodes", f"node '{dupes[0]}' is declared twice")
    inputs = [n.name for n in cell.nodes if n.combine == "input"]
    outputs = [n.name for n in cell.nodes if n.output]
    if len(inputs) != 1:
        _fail(source, "cell.nodes", f"need exactly one node with combine: input, found {len(inputs)} ({', '.join(inputs) or 'none'})")
    if len(outputs) != 1:
        _fail(source, "cell.nodes", f"need exactly one node with output: true, found {len(outputs)} ({', '.join(outputs) or 'none'})")
    for i, n in enumerate(cell.nodes):
        if n.channels is not None and n.channels < 1:
            _fail(source, f"cell.nodes[{i}].channels", f"must be >= 1, got {n.channels}")


def _check_edges(cell: CellSpec, source: str) -> None:
    names = {n.name for n in cell.nodes}
    labels: set[str] = set()
    for i, e in enumerate(cell.edges):
        key = f"cell.edges[{i}]"
        for end, node in (("from", e.src), ("to", e.dst)):
            if node not in names:
                _fail(source, f"{key}.{end}", f"unknown node '{node}'; nodes: {', '.join(sorted(names))}")
        if e.label and e.op:
            _fail(source, key, "an edge is either searchable (label) or fixed (op), not both")
        if e.ops is not None and not e.label:
            _fail(source, key, "candidate 'ops' need a 'label' (the edge's architecture choice)")
        if e.label in labels:
            _fail(source, f"{key}.label", f"label '{e.label}' is used twice in the cell")
        if e.label:
            labels.add(e.label)
            cands = cell.candidates(e)
            if not cands:
                _fail(source, f"{key}.ops", "no candidate ops: give 'ops' here or a default 'cell.ops'")
            if len(set(cands)) != len(cands):
                _fail(source, f"{key}.ops", f"repeated candidates {list(cands)}")
        for op in (cell.candidates(e) if e.label else (e.op,) if e.op else ()):
            try:
                canonical_op(op)
            except ConfigError as exc:
                _fail(source, f"{key}.ops" if e.label else f"{key}.op", str(exc))
        if cell.node(e.dst).combine != "concat_fuse" and cell.width(e.src) != cell.width(e.dst):
            _fail(source, key, f"width mismatch: '{e.src}' has {cell.width(e.src)} channels, '{e.dst}' has "
                  f"{cell.width(e.dst)}; ops keep the width, so only a concat_fuse node may change it")


def _check_graph(cell: CellSpec, source: str) -> None:
    g = graph_of(cell)
    if not nx.is_directed_acyclic_graph(g):
        cycle = " -> ".join(u for u, *_ in nx.find_cycle(g))
        _fail(source, "cell.edges", f"the graph has a cycle ({cycle}); a cell must be acyclic")
    src, dst = cell.input.name, cell.output.name
    if g.in_degree(src):
        _fail(source, "cell.edges", f"the input node '{src}' cannot have incoming edges")
    on_path = (nx.descendants(g, src) | {src}) & (nx.ancestors(g, dst) | {dst})
    for n in cell.nodes:
        if n.name not in on_path:
            _fail(source, "cell.nodes", f"dangling node '{n.name}': every node must lie on a path from "
                  f"'{src}' to '{dst}'")


def validate_space(spec: SpaceSpec, source: str = "<space>") -> None:
    """Raise ConfigError (naming ``source`` and the key) unless the space is well formed."""
    cell = spec.cell
    if cell.channels < 1:
        _fail(source, "cell.channels", f"must be >= 1, got {cell.channels}")
    if spec.repeat < 1:
        _fail(source, "repeat", f"must be >= 1, got {spec.repeat}")
    if "type" not in spec.model:
        _fail(source, "model", "needs a 'type'")
    _check_nodes(cell, source)
    _check_edges(cell, source)
    _check_graph(cell, source)
    for node in (cell.input, cell.output):
        if cell.width(node.name) != cell.channels:
            _fail(source, f"cell.nodes ({node.name})", f"the {'input' if node is cell.input else 'output'} "
                  f"width {cell.width(node.name)} must equal cell.channels {cell.channels}")
    for i, op in enumerate(cell.ops):
        try:
            canonical_op(op)
        except ConfigError as exc:
            _fail(source, f"cell.ops[{i}]", str(exc))
