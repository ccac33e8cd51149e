"""``nas-llv derive GENOTYPE_OR_RUN``: build the fixed network, print ops, params, FLOPs, and for
a search run its diagnostics (edge margins, when α settled); ``--sample N SPACE``: random genotypes;
``--max-skip M``: a search run's genotype again from its final α, at most M skip ops per cell."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from nas_llv.registry import COMMANDS


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 600x400, got '{text}'") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"width and height must be >= 1, got '{text}'")
    return w, h


def _at_least(low: int):
    """An argparse type: a whole number >= ``low``."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {low}, got '{text}'") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {n}")
        return n
    return parse


_positive = _at_least(1)


def run(args: argparse.Namespace) -> int:
    from nas_llv.config import ConfigError
    from nas_llv.space.genotype import find_genotype

    if args.sample is not None:
        return sample(args)
    if args.output is not None:
        raise ConfigError("-o/--output is where --sample writes; give --sample N with it")
    path = find_genotype(args.target)
    if args.max_skip is not None or args.draw:  # these write into the run folder: one writer at a time
        from nas_llv.runlock import writing_into

        with writing_into(path.parent):
            return _derive(args, path)
    return _derive(args, path)


def _derive(args: argparse.Namespace, path: Path) -> int:
    from nas_llv.config import ConfigError
    from nas_llv.derive.summary import genotype_lines, module_choices, search_lines
    from nas_llv.space.genotype import load_genotype

    geno = load_genotype(path)
    if args.max_skip is not None:
        path, geno = max_skip(path.parent, geno, args.max_skip)
    try:
        net = geno.build(channels=args.channels, repeat=args.repeat)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    print("\n".join(genotype_lines(geno, net, None if args.no_flops else args.size)))
    diagnostics = search_lines(path.parent)
    if diagnostics:
        print("\n".join(diagnostics))
    if args.draw:
        from nas_llv.layout import RunLayout
        from nas_llv.space.draw import draw_cell

        modules, folder = module_choices(geno), RunLayout(path.parent)
        for name, spec in geno.spaces.items():
            out = draw_cell(spec.cell, folder.drawing_path(name), title=f"derived {name}",
                            choices=modules.get(name, {}))
            print(f"wrote {out}")
        if diagnostics and not folder.candidates_path.is_file():  # a random search's α is one-hot
            from nas_llv.results import plot_entropy

            print(f"wrote {plot_entropy(path.parent, folder.entropy_path)}")
    return 0


def max_skip(run: Path, geno, limit: int):
    """``--max-skip``: the run's genotype from its final α with at most ``limit`` skip ops per cell
    (``derive/rederive.py``), written beside genotype.yaml; prints the file and the edges changed."""
    from nas_llv.derive.rederive import rederive

    path, capped = rederive(run, geno, limit)
    changed = capped.meta["max_skip"]["changed"]
    print(f"wrote {path}: at most {limit} skip ops per cell, from the final α of checkpoints/last.pt; "
          + (f"{len(changed)} edge{'s' if len(changed) > 1 else ''} changed:" if changed else "no edge changed"))
    for label, change in changed.items():
        print(f"  {label:18s} {change['from']} -> {change['to']}")
    return path, capped


def sample(args: argparse.Namespace) -> int:
    """``--sample N SPACE``: N genotypes drawn uniformly (each label independently, seeded), each
    written as ``sample_<i>/genotype.yaml`` under ``-o`` for ``nas-llv train``; nothing is written
    unless all N build."""
    import torch

    from nas_llv.config import ConfigError
    from nas_llv.layout import RunLayout
    from nas_llv.space.genotype import Genotype, declared_labels, random_choices

    given = [flag for flag, value in (("--channels", args.channels), ("--repeat", args.repeat),
                                      ("--draw", args.draw), ("--max-skip", args.max_skip is not None)) if value]
    if given:
        raise ConfigError(f"{given[0]} does not apply to --sample; derive a written sample with it")
    network, spaces, name = sample_source(args.target)
    labels = declared_labels(network, spaces)
    if not labels:
        raise ConfigError(f"{args.target}: the space has no choices to sample")
    out = Path(args.output or f"samples-{name}-seed{args.seed}")
    taken = sorted(out.glob("sample_*")) if out.is_dir() else []
    if taken or (out.exists() and not out.is_dir()):
        raise ConfigError(f"{out}: {'already holds samples' if taken else 'is a file'}; choose another -o DIR")
    generator = torch.Generator().manual_seed(args.seed)
    genotypes = [Genotype(network, spaces, random_choices(labels, generator),
                          {"sampled": {"from": str(args.target), "seed": args.seed, "index": i + 1, "of": args.sample}})
                 for i in range(args.sample)]
    for geno in genotypes:
        geno.build()  # every sample builds before any is written
    width = max(3, len(str(args.sample)))
    for i, geno in enumerate(genotypes):
        geno.save(RunLayout(out / f"sample_{i + 1:0{width}d}").genotype_path)
    size = math.prod(len(c) for c in labels.values())
    print(f"wrote {args.sample} genotypes drawn uniformly from {size:,} ({len(labels)} labels) to {out}/sample_*/"
          f"genotype.yaml; train one with: nas-llv train {out / f'sample_{1:0{width}d}'} --recipe RECIPE")
    return 0


def sample_source(target: str) -> tuple[dict, dict, str]:
    """(network, spaces, a name) of what ``--sample`` draws from: a genotype file or run folder (its
    network and spaces), a recipe (its ``network:``), or a space name or file (a single network)."""
    from nas_llv.config import ConfigError, load_yaml
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
        space = load_space(target)
    except ConfigError as exc:
        raise ConfigError(f"--sample {target}: {exc}") from None
    return {"type": "single"}, {space.name: space}, space.name


@COMMANDS.register("derive")
def add_parser(sub: argparse._SubParsersAction) -> None:
    from nas_llv.reference import REFERENCE_SIZE

    p = sub.add_parser("derive", help="build the fixed network of a genotype and summarise it",
                       description="Build the derived network from a genotype file (or a run folder) alone.")
    p.add_argument("target", help="genotype.yaml, or a run folder containing one (with --sample: what to sample)")
    p.add_argument("--channels", type=_positive, help="rebuild every module at this width (full-size retraining)")
    p.add_argument("--repeat", type=_positive, help="rebuild with this many stages/blocks per module")
    p.add_argument("--size", type=_size, default=REFERENCE_SIZE, help="input WIDTHxHEIGHT for FLOPs, the low-resolution "
                   "size for a super-resolution network (default 600x400)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    p.add_argument("--draw", action="store_true", help="draw each derived cell to PNG beside the genotype, and "
                   "for a search run each edge's entropy against step (entropy.png)")
    p.add_argument("--sample", type=_positive, metavar="N", help="instead: write N random genotypes of TARGET (a "
                   "space name or file, a recipe, or a genotype or run folder), each label drawn uniformly")
    p.add_argument("-o", "--output", metavar="DIR", help="with --sample: the folder for sample_<i>/genotype.yaml "
                   "(default samples-<name>-seed<S>)")
    p.add_argument("--seed", type=int, default=0, help="with --sample: the seed of the draw (default 0)")
    p.add_argument("--max-skip", type=_at_least(0), metavar="M", help="for a search run: derive its genotype again "
                   "from the final α (checkpoints/last.pt) with at most M skip ops per cell (P-DARTS), write it "
                   "to genotype_max_skip_<M>.yaml in the run folder and summarise that one")
    p.set_defaults(run=run)
