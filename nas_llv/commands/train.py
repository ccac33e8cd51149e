"""``nas-llv train GENOTYPE_OR_RUN --recipe R [KEY=VALUE ...]`` and ``nas-llv train --resume RUN``."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas_llv.config import ConfigError
from nas_llv.registry import COMMANDS


def _split_target(args: argparse.Namespace) -> None:
    """``train --init M --recipe R a=1``: argparse takes ``a=1`` as the target; it is an override."""
    if args.target and "=" in args.target and not Path(args.target).exists():
        args.overrides = [args.target, *(args.overrides or [])]
        args.target = None


def run_train(args: argparse.Namespace) -> int:
    from nas_llv import pipeline
    from nas_llv.commands._job import finished_run, launch_ranks

    _split_target(args)
    if args.resume:
        if args.target or args.recipe or args.overrides or args.init or args.keep or args.strict:
            raise ConfigError("--resume continues a run from its own config.yaml and genotype.yaml; "
                              "give no genotype, --recipe, --init, --keep, --strict or overrides")
    elif not args.recipe:
        raise ConfigError("give a recipe with --recipe (e.g. recipes/ruas_demo_train.yaml), or --resume RUN")
    elif not args.target and not args.init:
        raise ConfigError("give what to train: a genotype.yaml, a run folder holding one, or a model file "
                          "(or --init MODEL alone to fine-tune that model's network)")
    if args.nproc is not None:
        code = launch_ranks(args, None if args.resume else pipeline.load_recipe(args.recipe, args.overrides))
        if code is not None:
            return code
    if args.resume:
        return finished_run(lambda: pipeline.resume(args.resume, args.stop_after, kind="train"))
    return finished_run(lambda: pipeline.train(args.target or args.init, args.recipe, args.overrides or (),
                                               args.output, init=args.init, keep=args.keep,
                                               stop_after=args.stop_after, strict=args.strict or None))


@COMMANDS.register("train")
def add_parser(sub: argparse._SubParsersAction) -> None:
    from nas_llv.commands._job import add_nproc

    p = sub.add_parser("train", help="retrain a derived network (from scratch or from a model file)",
                       description="Retrain the network of a genotype at the size the recipe's train: section "
                                   "asks for; the run folder collects config, log, trajectory, checkpoints, "
                                   "genotype.yaml and the model files (docs/training.md).")
    p.add_argument("target", nargs="?", help="genotype.yaml, a run folder holding one, or a model file")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. train.steps=200 data.crop=64")
    p.add_argument("--recipe", metavar="R", help="recipe YAML with data, losses and a train: section")
    p.add_argument("--init", metavar="MODEL", help="start from this model file's weights (e.g. from import-ruas)")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped training run from checkpoints/last.pt")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop (with a checkpoint) after N more steps")
    p.add_argument("--output", metavar="DIR", help="parent folder of the run (default: the recipe's output, results/)")
    p.add_argument("--keep", choices=("last", "best"), help="which weights model.pt holds: the final step's (last, "
                   "the default; model_best.pt beside it) or the best validation step's (best; the final ones in "
                   "model_last.pt); the same as train.keep=...")
    p.add_argument("--strict", action="store_true", help="exit with status 3 when the trained network's outputs "
                   "leave the plausible range (a colour cast, saturated channels, darker than the input) or no "
                   "validation improved on the untrained network; the same as train.strict=true (docs/training.md)")
    add_nproc(p)
    p.set_defaults(run=run_train)
