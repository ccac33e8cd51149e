"""``nas-llv sweep RECIPE --seeds 0-7 [--grid KEY=V1,V2 ...] [--eval DIR]``: one search per seed and
grid point as Ray tasks, each an ordinary run folder in one sweep folder (``nas_llv.pipeline.trials``,
docs/scale.md)."""
from __future__ import annotations

import argparse

from nas_llv.registry import COMMANDS
from nas_llv.reference import REFERENCE_SIZE, size_text
from nas_llv.sweep import INSTALL, OVER_LIMIT, SEEDS_DEFAULT


def run(args: argparse.Namespace) -> int:
    from nas_llv.pipeline import SweepOptions, sweep

    sweep_dir, failed = sweep(SweepOptions(
        recipe=args.recipe, overrides=tuple(args.overrides or ()), seeds=args.seeds, grid=tuple(args.grid or ()),
        eval=args.eval, train_recipe=args.train_recipe, max_gflops=args.max_gflops, address=args.address,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, output=args.output,
        resume=args.resume))
    print(sweep_dir)  # the one line on standard output, as search prints its run folder
    return 1 if failed else 0


@COMMANDS.register("sweep")
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a recipe's search over seeds and a grid of settings, as Ray tasks",
                       description="One search per seed and grid point, each an ordinary run folder in "
                                   "<output>/<name>-sweep-<time>/, with summary.csv and summary.md; with --eval "
                                   "each genotype is also retrained and evaluated (docs/scale.md). Needs Ray: "
                                   f"{INSTALL}.")
    p.add_argument("recipe", nargs="?", help="search recipe YAML, e.g. recipes/ruas_demo.yaml")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE overrides for every trial (and its retraining), "
                   "e.g. search.epochs=2")
    p.add_argument("--seeds", default=SEEDS_DEFAULT, help="seeds: a range and/or a list, e.g. 0-7 or 0,2,5 "
                   f"(default {SEEDS_DEFAULT})")
    p.add_argument("--grid", action="append", metavar="KEY=V1,V2", help="a setting to sweep (repeatable; the "
                   "trials are the product of all grids and seeds), e.g. search.beta=0.5,1,2")
    p.add_argument("--eval", metavar="DIR", help="also retrain each genotype and evaluate it on DIR (paired "
                   "low/ and high/, as nas-llv eval takes)")
    p.add_argument("--train-recipe", metavar="R", help="the retraining recipe for --eval (default: the recipe "
                   "itself when it has a train: section, else <recipe>_train.yaml beside it)")
    p.add_argument("--max-gflops", type=float, metavar="G", help="a hard cost limit: a trial whose genotype has "
                   f"more than G GFLOPs at {size_text(REFERENCE_SIZE)} input is not retrained or evaluated; its "
                   f"summary row says '{OVER_LIMIT}' (docs/cost.md)")
    p.add_argument("--address", metavar="ADDR", help="join this Ray cluster (e.g. HEAD:6379) instead of "
                   "starting Ray here")
    p.add_argument("--cpus-per-trial", type=float, default=1, metavar="C",
                   help="CPUs each trial reserves, and its torch threads (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, metavar="G", help="GPUs each trial reserves (default 0)")
    p.add_argument("--output", metavar="DIR", help="parent folder of the sweep folder (default: the recipe's "
                   "output, results/)")
    p.add_argument("--resume", metavar="SWEEP_DIR", help="rerun the trials of this sweep that did not finish")
    p.set_defaults(run=run)
