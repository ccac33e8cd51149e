"""What the long-job commands (search, train) share on the command line: ``--nproc`` and the
one line of standard output. The jobs themselves run through ``nas_llv.pipeline``."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Callable

from nas_llv.config import ConfigError
from nas_llv.signals import exit_status

if TYPE_CHECKING:
    from nas_llv.pipeline import Recipe, Run


def finished_run(job: Callable[[], Run]) -> int:
    """Run ``job`` (a pipeline call); print the run folder, the one line on standard output (a
    shell captures it, RUN=$(nas-llv ...)); 130 on Ctrl-C, 143 on SIGTERM (the pipeline said how
    to resume)."""
    try:
        run = job()
    except KeyboardInterrupt as exc:
        return exit_status(exc)
    if run.writes:  # rank 0 only in a data-parallel run
        print(run.dir)
    return 0


def launch_ranks(args: argparse.Namespace, recipe: Recipe | None) -> int | None:
    """``--nproc N``: rerun this command as N torchrun ranks (nas_llv.distributed) and return its
    exit status; None when there is nothing to launch (no --nproc, or 1). ``recipe`` (a new run's)
    is checked first, so a batch that does not split is one line here, not N."""
    from nas_llv import distributed

    if args.nproc is None:
        return None
    if args.nproc < 1:
        raise ConfigError(f"--nproc {args.nproc}: expected a number of processes >= 1")
    if args.nproc == 1:
        return None
    if recipe is not None:
        distributed.check_batch(recipe.data.batch_size, args.nproc)
    return distributed.launch(args.nproc, distributed.strip_nproc(args.argv))


def add_nproc(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nproc", type=int, metavar="N", help="data-parallel: run N processes on this machine "
                        "(torchrun), each on its slice of every batch (docs/scale.md)")
