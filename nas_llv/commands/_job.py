"""Starting and running a long job (search, train) in its run folder, with the resume hint on a stop."""
from __future__ import annotations

import logging
from typing import Any, Callable

from nas_llv.config import ConfigError

log = logging.getLogger("nas_llv")


def start_job(recipe: Any, recipe_arg: str, output: str | None, build: Callable[[], Any]) -> tuple[Any, Any]:
    """A new run of the job ``build()`` makes, in ``output`` (else the recipe's output folder).

    The output folder is checked and the job built (it checks the recipe on one batch) before the
    run folder exists, so bad input leaves nothing behind; a failure while attaching removes it.
    """
    from nas_llv.paths import check_output_dir

    root = output or recipe.output
    check_output_dir(root, "--output" if output else f"{recipe_arg}: output")
    job = build()
    run = _create_run(recipe, root)
    with run.discarded_on_error():
        job.attach(run)
    return job, run


def _create_run(recipe: Any, root: str) -> Any:
    """Rank 0 creates the run folder; in a data-parallel run the others get its name
    (``MirrorRun``: they write nothing), or stop quietly when rank 0 could not create it."""
    from nas_llv import distributed
    from nas_llv.runs import MirrorRun, Run

    if not distributed.is_main():
        path = distributed.broadcast(None)
        if path is None:
            raise distributed.PeerFailed("rank 0 could not create the run folder")
        return MirrorRun(path, created=True)
    try:
        run = Run.create(recipe.to_dict(), recipe.name, root)
    except BaseException:
        distributed.broadcast(None)
        raise
    distributed.broadcast(str(run.dir))
    return run


def resume_job(path: str, kind: str, build: Callable[[Any, Any, dict[str, Any]], Any]) -> tuple[Any, Any]:
    """The job of run ``path`` (whose checkpoint ``kind`` wrote), rebuilt from the run's own
    config.yaml by ``build(recipe, run, state)``, attached and restored; on any error the run is
    closed again."""
    from nas_llv import distributed
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.runs import MirrorRun, Run

    run, state = (Run if distributed.is_main() else MirrorRun).resume(path, kind)
    with run.closed_on_error():
        distributed.check_world_size(state.get("world_size"), run.dir)
        recipe = recipe_from_dict(run.config(), str(run.dir / "config.yaml"))
        job = build(recipe, run, state)
        job.attach(run)
        job.restore(state)
    return job, run


def launch_ranks(args: Any, recipe: Any | None) -> int | None:
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


def add_nproc(parser: Any) -> None:
    parser.add_argument("--nproc", type=int, metavar="N", help="data-parallel: run N processes on this machine "
                        "(torchrun), each on its slice of every batch (docs/scale.md)")


def run_job(job: Any, run: Any, command: str, stop_after: int | None) -> int:
    """``job.run(stop_after)``; prints the run folder when it finishes, says how to resume if not."""
    from nas_llv.distributed import resume_hint

    fresh = run.created and job.step == 0  # a failure before a new run's first step leaves no folder
    with run:
        try:
            finished = job.run(stop_after=stop_after)
        except KeyboardInterrupt:
            log.info("interrupted at step %d; continue with: %s", job.step, resume_hint(command, run.dir))
            return 130
        except BaseException:
            if fresh and job.step == 0:
                run.discard()
            raise
        finally:
            if hasattr(job, "close"):
                job.close()
    if not finished:
        log.info("stopped at step %d (the end of the %s unit that passed --stop-after); continue with: %s",
                 job.step, command, resume_hint(command, run.dir))
    if run.writes:  # rank 0 only in a data-parallel run
        print(run.dir)  # the one line on standard output: a shell captures it, RUN=$(nas-llv ...)
    return 0
