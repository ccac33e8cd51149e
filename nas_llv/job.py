"""A resumable loop of steps inside a run folder: what search and train share.

A job advances one unit at a time (a search iteration, a training step). Between units its
state is whole, so a checkpoint taken there resumes exactly: at ``stop_after``, every
``checkpoint_every`` steps, and on Ctrl-C (deferred to the unit's end; a second Ctrl-C stops at
once and keeps the last checkpoint).
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Mapping

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from nas_llv import distributed
from nas_llv.config import ConfigError, first_line
from nas_llv.rows import PendingRows
from nas_llv.runs import Run, deferred_interrupt


log = logging.getLogger("nas_llv.progress")

PROGRESS_EVERY = 15.0  # seconds between progress lines in the log


class Progress:
    """A bar on a terminal (none in a pipe or a file), and a line in the log every ``every``
    seconds wherever the log goes: step, rate, time left."""

    def __init__(self, job: Job, every: float | None = None) -> None:
        self.job, self.every = job, PROGRESS_EVERY if every is None else every
        done, total = job.progress()
        self.bar = tqdm(total=total, initial=done, desc=f"{job.kind} {job.recipe.name}", unit="step",
                        disable=None if distributed.is_main() else True)  # one bar for a data-parallel run
        self.start_done, self.start = done, time.perf_counter()
        self.last = self.start

    def update(self) -> None:
        done, total = self.job.progress()
        self.bar.update(done - self.bar.n)
        now = time.perf_counter()
        if now - self.last >= self.every and done > self.start_done:
            per_step = (now - self.start) / (done - self.start_done)
            log.info("%s: step %d/%d, %.2f s/step, about %s left", self.job.kind, done, total, per_step,
                     _duration(per_step * (total - done)))
            self.last = now

    def logging(self) -> contextlib.AbstractContextManager[Any]:
        """While the bar is drawn, console log lines print above it instead of into it."""
        return contextlib.nullcontext() if self.bar.disable else logging_redirect_tqdm()

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Diverged(ConfigError):
    """A loss, an upper variable (α, ς) or a weight became NaN or infinite; the run stops there."""


def on_device(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """``batch`` with its tensors on ``device`` (other entries as they are). From the host to a CUDA
    device each tensor goes through pinned memory and is copied without blocking the host: the copy
    is queued on the stream before the kernels that read it, so fetching the next batch does not wait
    for the device to finish the previous step (``speed.sync_every``; a copy from pageable memory
    would)."""
    device = torch.device(device)
    return {k: _moved(v, device) if torch.is_tensor(v) else v for k, v in batch.items()}


def _moved(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class Job:
    """Subclasses set ``kind``, ``step``, ``elapsed``, ``device``, ``recipe`` and implement
    ``done``, ``advance``, ``progress``, ``finish`` and ``state_dict``."""

    kind: str = "job"
    step: int
    saved_step: int | None = None  # the step of the latest checkpoint this process wrote
    elapsed: float
    device: torch.device
    attached_run: Run | None = None  # the run folder this job writes (set by attach)

    total_steps: int

    # -- what a job provides -----------------------------------------------------------------
    def close(self) -> None:
        """Release what the job holds beyond its run (a search's data workers); nothing by default."""

    def done(self) -> bool:
        raise NotImplementedError

    def advance(self, start: float) -> None:
        """One unit of work (it may take several steps)."""
        raise NotImplementedError

    def progress(self) -> tuple[int, int]:
        """(steps done, steps in all), as the log and the trajectory count them: the bar and the
        progress lines show these."""
        raise NotImplementedError

    def checkpoint_due(self) -> bool:
        raise NotImplementedError

    def finish(self, start: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------------
    def attach(self, run: Run) -> None:
        self.attached_run = run
        if run.writes and self.recipe.logging.tensorboard:  # the rows to TensorBoard too
            from nas_llv.tensorboard import tee

            tee(run)

    def _batch(self, stream: Any) -> dict[str, Any]:
        """The next batch of ``stream``, its tensors on this job's device."""
        return on_device(next(stream), self.device)

    def restore(self, state: dict[str, Any]) -> None:
        """``load_state_dict`` of a checkpoint, with one line when it does not fit this job."""
        try:
            self.load_state_dict(state)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            raise ConfigError(f"{self.attached_run.checkpoint_path()}: does not fit this run's network "
                              f"and config ({type(exc).__name__}: {first_line(exc)})") from None
        self.saved_step = self.step  # the checkpoint on disk is this state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def flush_rows(self) -> None:
        """Read what the steps kept on the device (``speed.sync_every``, ``nas_llv.rows``) and write or
        add it up; ``Diverged`` for the first of their steps with a non-finite entry. Nothing by default."""

    def save(self, start: float | None = None) -> None:
        """Checkpoint (once per step: an epoch end that is also a checkpoint step writes one);
        ``start`` (the loop's perf_counter origin) updates the elapsed time. The rows kept on the
        device are read first: a checkpoint comes with every row up to its step (a resume truncates
        to it), and one is never written after a non-finite step."""
        self.flush_rows()
        if self.saved_step == self.step:
            return
        if start is not None:
            self.elapsed = time.perf_counter() - start
        self.attached_run.save_checkpoint(self.state_dict())
        self.saved_step = self.step

    def check_finite(self, module: str, groups: Mapping[str, Mapping[str, Any]], step: int | None = None) -> None:
        """Raise ``Diverged`` naming the step, ``module`` and the first non-finite entry of
        ``groups`` (e.g. {"loss term": terms, "weight": params}) at ``step`` (default: the current
        one); the checkpoint on disk is the last finite state."""
        rows = PendingRows()  # the check the steps defer (nas_llv.rows), read at once here
        rows.add(step or self.step, module, {}, groups)
        rows.flush(lambda row: None, self.diverged)

    def diverged(self, step: int, module: str, what: str, name: str, shown: Any) -> Diverged:
        """The error for entry ``name`` of ``what`` (its value ``shown``) of ``module``, non-finite at ``step``."""
        kept = (f"the last checkpoint (step {self.saved_step}) is kept" if self.saved_step is not None
                else "no checkpoint was written")
        return Diverged(f"{self.kind} diverged at step {step}, module {module}: {what} {name} "
                        f"is {shown}; {kept}. Lower the learning rates or clip the gradients")

    def run(self, stop_after: int | None = None) -> bool:
        """Run to the end (True), or checkpoint and stop (False) at the first unit boundary after
        ``stop_after`` more steps. Ctrl-C checkpoints at the next boundary and re-raises."""
        if stop_after is not None and stop_after < 0:
            raise ConfigError(f"--stop-after {stop_after}: expected a number of steps >= 0")
        limit = None if stop_after is None else self.step + stop_after
        start = time.perf_counter() - self.elapsed
        bar = Progress(self)
        whole = True
        try:
            with deferred_interrupt() as interrupt, bar.logging():
                while not self.done():
                    if limit is not None and self.step >= limit:
                        self.save(start)
                        return False
                    whole = False  # a second Ctrl-C may land inside the unit: no checkpoint then
                    self.advance(start)
                    whole = True
                    bar.update()
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
