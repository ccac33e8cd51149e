"""``nas-llv search RECIPE [KEY=VALUE ...]`` and ``nas-llv search --resume RUN``."""
from __future__ import annotations

import argparse

from nas_llv.config import ConfigError
from nas_llv.registry import COMMANDS


def run_search(args: argparse.Namespace) -> int:
    from nas_llv import pipeline
    from nas_llv.commands._job import finished_run, launch_ranks

    if args.resume and (args.recipe or args.overrides):
        raise ConfigError("--resume continues a run from its own config.yaml; give no recipe or overrides")
    if not args.resume and not args.recipe:
        raise ConfigError("give a recipe file (e.g. recipes/ruas_demo.yaml) or --resume RUN")
    if args.nproc is not None:
        code = launch_ranks(args, None if args.resume else pipeline.load_recipe(args.recipe, args.overrides))
        if code is not None:
            return code
    return finished_run(lambda: pipeline.resume(args.resume, args.stop_after, kind="search") if args.resume else
                        pipeline.search(args.recipe, args.overrides or (), args.output, args.stop_after))


@COMMANDS.register("search")
def add_parser(sub: argparse._SubParsersAction) -> None:
    from nas_llv.commands._job import add_nproc

    p = sub.add_parser("search", help="run an architecture (and hyper-variable) search from a recipe",
                       description="Search a recipe's spaces; the run folder collects config, log, "
                                   "trajectory, checkpoints and genotype.")
    p.add_argument("recipe", nargs="?", help="recipe YAML, e.g. recipes/ruas_demo.yaml")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. search.epochs=2 data.crop=64")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from checkpoints/last.pt")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop (with a checkpoint) after N more steps")
    p.add_argument("--output", metavar="DIR", help="parent folder of the run (default: the recipe's output, results/)")
    add_nproc(p)
    p.set_defaults(run=run_search)
