"""Running a long job (search, train) in its run folder, with the resume hint on a stop."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("nas_llv")


def run_job(job: Any, run: Any, command: str, stop_after: int | None) -> int:
    """``job.run(stop_after)``; prints the run folder when it finishes, says how to resume if not."""
    fresh = run.created and job.step == 0  # a failure before a new run's first step leaves no folder
    with run:
        try:
            finished = job.run(stop_after=stop_after)
        except KeyboardInterrupt:
            log.info("interrupted at step %d; continue with: nas-llv %s --resume %s", job.step, command, run.dir)
            return 130
        except BaseException:
            if fresh and job.step == 0:
                run.discard()
            raise
        finally:
            if hasattr(job, "close"):
                job.close()
    if not finished:
        log.info("stopped after step %d; continue with: nas-llv %s --resume %s", job.step, command, run.dir)
        return 0
    print(run.dir)
    return 0
