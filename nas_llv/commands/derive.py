"""``nas-llv derive GENOTYPE_OR_RUN``: build the fixed network, print ops, params, FLOPs, and for
a search run its diagnostics (edge margins, when α settled); ``--sample N SPACE``: random genotypes;
``--max-skip M``: a search run's genotype again from its final α, at most M skip ops per cell."""
from __future__ import annotations

import argparse

from nas_llv.config import ConfigError
from nas_llv.reference import REFERENCE_SIZE, size_text
from nas_llv.registry import COMMANDS


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as {size_text(REFERENCE_SIZE)}, got '{text}'") from None
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
    from nas_llv import pipeline

    if args.sample is not None:
        return sample(args)
    if args.output is not None:
        raise ConfigError("-o/--output is where --sample writes; give --sample N with it")
    done = pipeline.derive(args.target, channels=args.channels, repeat=args.repeat,
                           size=None if args.no_flops else args.size, draw=args.draw, max_skip=args.max_skip)
    if done.capped is not None:
        capped = done.capped
        changed = capped.changed
        print(f"wrote {capped.path}: at most {capped.limit} skip ops per cell, from the final α of {capped.source}; "
              + (f"{len(changed)} edge{'s' if len(changed) > 1 else ''} changed:" if changed else "no edge changed"))
        for label, change in changed.items():
            print(f"  {label:18s} {change['from']} -> {change['to']}")
    print("\n".join(done.lines))
    if done.diagnostics:
        print("\n".join(done.diagnostics))
    for path in done.drawn:
        print(f"wrote {path}")
    return 0


def sample(args: argparse.Namespace) -> int:
    """``--sample N TARGET``: N random genotypes (``pipeline.sample``)."""
    from nas_llv import pipeline

    given = [flag for flag, value in (("--channels", args.channels), ("--repeat", args.repeat),
                                      ("--draw", args.draw), ("--max-skip", args.max_skip is not None)) if value]
    if given:
        raise ConfigError(f"{given[0]} does not apply to --sample; derive a written sample with it")
    done = pipeline.sample(args.target, args.sample, seed=args.seed, output=args.output)
    first = done.paths[0]
    print(f"wrote {len(done.paths)} genotypes drawn uniformly from {done.size:,} ({done.labels} labels) to "
          f"{done.out}/sample_*/{first.name}; train one with: nas-llv train {first.parent} --recipe RECIPE")
    return 0


@COMMANDS.register("derive")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("derive", help="build the fixed network of a genotype and summarise it",
                       description="Build the derived network from a genotype file (or a run folder) alone.")
    p.add_argument("target", help="genotype.yaml, or a run folder containing one (with --sample: what to sample)")
    p.add_argument("--channels", type=_positive, help="rebuild every module at this width (full-size retraining)")
    p.add_argument("--repeat", type=_positive, help="rebuild with this many stages/blocks per module")
    p.add_argument("--size", type=_size, default=REFERENCE_SIZE, help="input WIDTHxHEIGHT for FLOPs, the low-resolution "
                   f"size for a super-resolution network (default {size_text(REFERENCE_SIZE)})")
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
