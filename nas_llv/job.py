"""A resumable loop of steps inside a run folder: what search and train share.

A job advances one unit at a time (a search iteration, a training step). Between units its
state is whole, so a checkpoint taken there resumes exactly: at ``stop_after``, every
``checkpoint_every`` steps, and on Ctrl-C (deferred to the unit's end; a second Ctrl-C stops at
once and keeps the last checkpoint).
"""
from __future__ import annotations

import time
from typing import Any

import torch
from tqdm.auto import tqdm

from .runs import Run, deferred_interrupt


class Job:
    """Subclasses set ``kind``, ``step``, ``elapsed``, ``device``, ``recipe`` and implement
    ``done``, ``advance``, ``progress``, ``finish`` and ``state_dict``."""

    kind: str = "job"
    step: int
    elapsed: float
    device: torch.device
    run_dir: Run | None = None

    # -- what a job provides -----------------------------------------------------------------
    def done(self) -> bool:
        raise NotImplementedError

    def advance(self, start: float) -> None:
        """One unit of work (it may take several steps)."""
        raise NotImplementedError

    def progress(self) -> tuple[int, int]:
        """(units done, units in all), for the progress bar."""
        raise NotImplementedError

    def checkpoint_due(self) -> bool:
        raise NotImplementedError

    def finish(self, start: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def attach(self, run: Run) -> None:
        self.run_dir = run

    def _batch(self, stream: Any) -> dict[str, Any]:
        """The next batch of ``stream``, its tensors on this job's device."""
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in next(stream).items()}

    def save(self, start: float | None = None) -> None:
        """Checkpoint; ``start`` (the loop's perf_counter origin) updates the elapsed time."""
        if start is not None:
            self.elapsed = time.perf_counter() - start
        self.run_dir.save_checkpoint(self.state_dict())

    def run(self, stop_after: int | None = None) -> bool:
        """Run to the end (True), or checkpoint and stop (False) at the first unit boundary after
        ``stop_after`` more steps. Ctrl-C checkpoints at the next boundary and re-raises."""
        from .config import ConfigError

        if stop_after is not None and stop_after < 0:
            raise ConfigError(f"--stop-after {stop_after}: expected a number of steps >= 0")
        limit = None if stop_after is None else self.step + stop_after
        start = time.perf_counter() - self.elapsed
        done, total = self.progress()
        bar = tqdm(total=total, initial=done, desc=f"{self.kind} {self.recipe.name}", unit="it", disable=None)
        whole = True
        try:
            with deferred_interrupt() as interrupt:
                while not self.done():
                    if limit is not None and self.step >= limit:
                        self.save(start)
                        return False
                    whole = False  # a second Ctrl-C may land inside the unit: no checkpoint then
                    self.advance(start)
                    whole = True
                    bar.update(1)
                    if self.checkpoint_due():
                        self.save(start)
                    interrupt.check()
        except KeyboardInterrupt:
            if whole:
                self.save(start)
            raise
        finally:
            bar.close()
        self.finish(start)
        return True
