"""SIGTERM as graceful as Ctrl-C.

Slurm, Kubernetes and Ray stop a job with SIGTERM (preemption, a time limit, a cancelled trial).
The command line turns it into ``Terminated``, a KeyboardInterrupt, so every path that handles
Ctrl-C handles it too: inside a search or training loop the first one stops at the end of the
step with a checkpoint and a resume hint (``runs.deferred_interrupt``), a second stops at once;
elsewhere ``finally`` blocks still remove temp files. The exit status is 143 (128 + 15), as a
shell reports a process that SIGTERM ended, and 130 for Ctrl-C.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would raise KeyboardInterrupt."""


def raise_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_status(exc: KeyboardInterrupt) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def name(signum: int) -> str:
    return "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in the main thread (the command line's whole run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
