"""``nas-llv search RECIPE [KEY=VALUE ...]`` and ``nas-llv search --resume RUN``."""
from __future__ import annotations

import argparse
import logging

from nas_llv.config import ConfigError

log = logging.getLogger("nas_llv.search")


def start(args: argparse.Namespace):
    """The Searcher and its run folder: a new run, or one resumed from its checkpoint."""
    from nas_llv.commands._job import resume_job, start_job
    from nas_llv.recipe import load_recipe

    if args.resume:
        if args.recipe or args.overrides:
            raise ConfigError("--resume continues a run from its own config.yaml; give no recipe or overrides")
        searcher, run = resume_job(args.resume, "search", lambda recipe, run, state: _searcher(recipe))
        if searcher.done():
            log.info("%s finished at step %d of %d; nothing left to run", run.dir, searcher.step, searcher.total_steps)
        else:
            log.info("resuming %s at step %d of %d (epoch %d)", run.dir, searcher.step, searcher.total_steps,
                     searcher.epoch + 1)
        return searcher, run
    if not args.recipe:
        raise ConfigError("give a recipe file (e.g. recipes/ruas_demo.yaml) or --resume RUN")
    recipe = load_recipe(args.recipe, args.overrides)
    return start_job(recipe, args.recipe, args.output, lambda: _searcher(recipe))


def _searcher(recipe):
    from nas_llv.search.loop import Searcher  # heavy (NNI): only once the recipe has been checked

    return Searcher(recipe)


def run_search(args: argparse.Namespace) -> int:
    from nas_llv.commands._job import launch_ranks, run_job
    from nas_llv.recipe import load_recipe

    if args.nproc is not None:
        code = launch_ranks(args, load_recipe(args.recipe, args.overrides) if args.recipe and not args.resume else None)
        if code is not None:
            return code
    searcher, run = start(args)
    return run_job(searcher, run, "search", args.stop_after)


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
