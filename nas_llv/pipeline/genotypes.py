"""Genotypes as the pipeline's steps: ``derive`` builds the fixed network of a genotype file or a
run and summarises it (ops, params, FLOPs, a search's diagnostics; optionally again with a cap on
skip ops, and drawn), ``sample`` writes random genotypes of a space for ``train``."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas_llv.config import ConfigError
from nas_llv.reference import REFERENCE_SIZE
from nas_llv.layout import RunLayout

if TYPE_CHECKING:
    from nas_llv.space.genotype import Genotype


@dataclass(frozen=True)
class Capped:
    """``derive(max_skip=M)``: the genotype derived again with at most ``limit`` skip ops per cell."""

    path: Path  # genotype_max_skip_<M>.yaml, beside the run's genotype.yaml
    limit: int
    source: str  # the checkpoint its α came from, relative to the run folder
    changed: dict[str, dict[str, str]]  # label -> {"from": op, "to": op}


@dataclass(frozen=True)
class Derived:
    """What ``derive`` found: the genotype summarised (from ``path``), its lines (network, op per
    label, params, FLOPs), a search run's diagnostics (edge margins and when α settled, or a random
    search's best candidates; empty for a bare genotype file) and the files it wrote."""

    genotype: Genotype
    path: Path
    lines: list[str]
    diagnostics: list[str]
    capped: Capped | None = None
    drawn: list[Path] = field(default_factory=list)  # cell_<module>.png, entropy.png


def derive(target: str | Path | RunLayout, channels: int | None = None, repeat: int | None = None,
           size: tuple[int, int] | None = REFERENCE_SIZE, draw: bool = False,
           max_skip: int | None = None) -> Derived:
    """Build the network of ``target`` (a genotype file, or a run folder holding genotype.yaml) at
    ``channels`` and ``repeat`` (None: as searched) and summarise it, FLOPs at ``size`` (width,
    height; None: not counted). ``max_skip``: first derive the run's genotype again from its final
    α with at most that many skip ops per cell (written beside genotype.yaml); ``draw``: draw each
    derived cell, and a search's entropy against step, into the genotype's folder."""
    from nas_llv.space.genotype import find_genotype

    path = find_genotype(target.dir if isinstance(target, RunLayout) else target)
    if max_skip is None and not draw:
        return _derive(path, channels, repeat, size, draw, max_skip)
    from nas_llv.runlock import writing_into

    with writing_into(path.parent):  # these write into the run folder: one writer at a time
        return _derive(path, channels, repeat, size, draw, max_skip)


def _derive(path: Path, channels: int | None, repeat: int | None, size: tuple[int, int] | None, draw: bool,
            max_skip: int | None) -> Derived:
    from nas_llv.derive.summary import genotype_lines, search_lines
    from nas_llv.space.genotype import load_genotype

    geno, capped = load_genotype(path), None
    if max_skip is not None:
        capped, geno = _capped(path.parent, geno, max_skip)
        path = capped.path
    try:
        net = geno.build(channels=channels, repeat=repeat)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    lines, diagnostics = genotype_lines(geno, net, size), search_lines(path.parent)
    drawn = _draw(RunLayout(path.parent), geno, bool(diagnostics)) if draw else []
    return Derived(geno, path, lines, diagnostics, capped, drawn)


def _capped(run: Path, geno: Genotype, limit: int) -> tuple[Capped, Genotype]:
    from nas_llv.derive.rederive import rederive

    path, capped = rederive(run, geno, limit)
    return Capped(path, limit, capped.meta["derived_from"], dict(capped.meta["max_skip"]["changed"])), capped


def _draw(folder: RunLayout, geno: Genotype, searched: bool) -> list[Path]:
    """Each derived cell to ``cell_<module>.png``; for a search run (not a random one, whose α is
    one-hot) each edge's entropy against step to ``entropy.png``."""
    from nas_llv.derive.summary import module_choices
    from nas_llv.space.draw import draw_cell

    modules = module_choices(geno)
    drawn = [draw_cell(spec.cell, folder.drawing_path(name), title=f"derived {name}", choices=modules.get(name, {}))
             for name, spec in geno.spaces.items()]
    if searched and not folder.candidates_path.is_file():
        from nas_llv.results import plot_entropy

        drawn.append(plot_entropy(folder.dir, folder.entropy_path))
    return drawn


@dataclass(frozen=True)
class Sampled:
    """``sample``'s genotypes: ``paths`` (``out/sample_<i>/genotype.yaml``), drawn from a space of
    ``size`` architectures over ``labels`` labels."""

    out: Path
    paths: list[Path]
    size: int
    labels: int


def sample(target: str | Path, n: int, seed: int = 0, output: str | Path | None = None) -> Sampled:
    """``n`` genotypes of ``target`` (a space name or file, a recipe, or a genotype file or run
    folder), each label drawn uniformly and independently (seeded), written as
    ``sample_<i>/genotype.yaml`` under ``output`` (default ``samples-<name>-seed<seed>``) for
    ``train``; nothing is written unless all ``n`` build."""
    import torch

    from nas_llv.space.genotype import Genotype, declared_labels, random_choices

    network, spaces, name = sample_source(target)
    labels = declared_labels(network, spaces)
    if not labels:
        raise ConfigError(f"{target}: the space has no choices to sample")
    out = Path(output or f"samples-{name}-seed{seed}")
    taken = sorted(out.glob("sample_*")) if out.is_dir() else []
    if taken or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out}: {'already holds samples' if taken else 'is a file'}; choose another -o DIR")
    generator = torch.Generator().manual_seed(seed)
    genotypes = [Genotype(network, spaces, random_choices(labels, generator),
                          {"sampled": {"from": str(target), "seed": seed, "index": i + 1, "of": n}})
                 for i in range(n)]
    for geno in genotypes:
        geno.build()  # every sample builds before any is written
    width = max(3, len(str(n)))
    paths = [geno.save(RunLayout(out / f"sample_{i + 1:0{width}d}").genotype_path) for i, geno in enumerate(genotypes)]
    return Sampled(out, paths, math.prod(len(c) for c in labels.values()), len(labels))


def sample_source(target: str | Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(network, spaces, a name) of what ``sample`` draws from: a genotype file or run folder (its
    network and spaces), a recipe (its ``network:``), or a space name or file (a single network)."""
    from nas_llv.config import load_yaml
    from nas_llv.space.genotype import find_genotype, load_genotype
    from nas_llv.space.spec import load_space

    path = Path(target)
    data = load_yaml(path) if path.is_file() and path.suffix.lower() in (".yaml", ".yml") else {}
    if path.is_dir() or "genotype" in data:
        geno = load_genotype(find_genotype(path))
        return dict(geno.network), dict(geno.spaces), (path.resolve().parent if path.is_file() else path.resolve()).name
    if "network" in data:
        from nas_llv.recipe import load_recipe
        from nas_llv.space.models.base import fit_scale

        recipe = load_recipe(path, [])
        spaces = fit_scale({k: load_space(v) for k, v in recipe.network.spaces.items()}, recipe.data.scale)
        return recipe.network.builder_config(), spaces, recipe.name
    try:
        space = load_space(str(target))
    except ConfigError as exc:
        raise ConfigError(f"--sample {target}: {exc}") from None
    return {"type": "single"}, {space.name: space}, space.name
