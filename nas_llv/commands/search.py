"""``nas-llv search RECIPE [KEY=VALUE ...]`` and ``nas-llv search --resume RUN``."""
from __future__ import annotations

import argparse
import logging

from nas_llv.config import ConfigError

log = logging.getLogger("nas_llv.search")


def start(args: argparse.Namespace):
    """The Searcher and its run folder: a new run, or one resumed from its checkpoint."""
    from nas_llv.paths import check_output_dir
    from nas_llv.recipe import load_recipe, recipe_from_dict
    from nas_llv.registry import STRATEGIES
    from nas_llv.runs import Run

    if args.resume:
        if args.recipe or args.overrides:
            raise ConfigError("--resume continues a run from its own config.yaml; give no recipe or overrides")
        run, state = Run.resume(args.resume, "search")
        with run.closed_on_error():
            recipe = recipe_from_dict(run.config(), str(run.dir / "config.yaml"))
            searcher = STRATEGIES.get(recipe.search.strategy)(recipe)
            searcher.attach(run)
            searcher.restore(state)
        log.info("resuming %s at step %d (epoch %d)", run.dir, searcher.step, searcher.epoch + 1)
        return searcher, run
    if not args.recipe:
        raise ConfigError("give a recipe file (e.g. recipes/ruas_demo.yaml) or --resume RUN")
    recipe = load_recipe(args.recipe, args.overrides)
    root = args.output or recipe.output
    check_output_dir(root, "--output" if args.output else f"{args.recipe}: output")
    # Build (and check one batch) before creating the run folder: bad input leaves nothing behind.
    searcher = STRATEGIES.get(recipe.search.strategy)(recipe)
    run = Run.create(recipe.to_dict(), recipe.name, root)
    with run.discarded_on_error():
        searcher.attach(run)
    return searcher, run


def run_search(args: argparse.Namespace) -> int:
    from nas_llv.commands._job import run_job

    searcher, run = start(args)
    return run_job(searcher, run, "search", args.stop_after)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run an architecture (and hyper-variable) search from a recipe",
                       description="Search a recipe's spaces; the run folder collects config, log, "
                                   "trajectory, checkpoints and genotype.")
    p.add_argument("recipe", nargs="?", help="recipe YAML, e.g. recipes/ruas_demo.yaml")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides, e.g. search.epochs=2 data.crop=64")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from checkpoints/last.pt")
    p.add_argument("--stop-after", type=int, metavar="N", help="stop (with a checkpoint) after N more steps")
    p.add_argument("--output", metavar="DIR", help="parent folder of the run (default: the recipe's output, results/)")
    p.set_defaults(run=run_search)
