"""One writer per run folder: an advisory ``fcntl.flock`` on ``RUN/.lock``.

``search``, ``train`` and ``--resume`` take it before they write, ``eval`` and ``derive`` while
they write into a run folder (``writing_into``); a second writer is refused in
one line naming the holder's PID and start time. The kernel releases a flock when its process
dies, however it dies (SIGKILL, a crash, a lost node), so a lock left by a killed process is never
"held": the next writer takes the file over and says whose it was. The file's text (PID, host,
start time) is only for messages; the flock is the lock.

Within one process the lock is shared: a second ``Run`` of a folder this process already writes
(a test, or a Python session that resumes a run it has not closed) counts up instead of blocking
itself; the flock goes when the last one releases it.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Iterator

from nas_llv.config import ConfigError
from nas_llv.paths import unwritable
from nas_llv.layout import RunLayout

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
_HELD: dict[Path, list] = {}  # resolved lock path -> [open file, holders in this process]


def lock_fields(text: str) -> dict[str, str]:
    """The lock file's text as {pid, host, started} (empty: no writer said who it was)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def writer_pid(run_dir: str | Path) -> int | None:
    """The PID of a live process of this host that the folder's lock names as its writer, else
    None (a clean end empties the file; a killed writer's PID is no longer running)."""
    try:
        fields = lock_fields((Path(run_dir) / LOCK_NAME).read_text(encoding="utf-8"))
        pid = int(fields["pid"])
    except (OSError, UnicodeError, KeyError, ValueError):
        return None
    if fields.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:  # alive, another user's
        return pid
    except OSError:
        return None
    return pid


def _holder(text: str) -> str:
    """'PID 123 on host, started 2026-12-06 20:01:02' from the lock file's text."""
    fields = lock_fields(text)
    if "pid" not in fields:
        return "another process"
    return f"PID {fields['pid']} on {fields.get('host', '?')}, started {fields.get('started', '?')}"


class RunLock:
    """The exclusive lock of one run folder, held from ``acquire()`` to ``release()``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._key = self.path.resolve()
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise ConfigError naming its holder; logs a takeover of a dead one's."""
        if self._key in _HELD:
            _HELD[self._key][1] += 1
            self._file = _HELD[self._key][0]
            return self
        f = self._open()
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = _holder(f.read())
            f.close()
            raise ConfigError(f"{self.path.parent}: another nas-llv process is writing this run ({holder}); "
                              f"wait for it to end or stop it, then resume") from None
        except OSError as exc:  # a file system without locks (some network mounts): say so, go on
            f.close()
            log.warning("%s: cannot lock the run folder here (%s); a second writer would not be stopped",
                        self.path.parent, exc.strerror or exc)
            return self
        f.seek(0)
        previous = f.read()
        if previous.strip():
            log.warning("took over the lock of %s: that process is no longer running", _holder(previous))
        f.seek(0)
        f.truncate()
        f.write(f"pid={os.getpid()}\nhost={socket.gethostname()}\n"
                f"started={datetime.now().strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        self._file = f
        _HELD[self._key] = [f, 1]
        return self

    def _open(self) -> IO[str]:
        """The lock file, opened to append; one line naming the folder when it cannot be written
        (a read-only mount, a folder of another user), before anything is written."""
        folder = self.path.parent
        reason = unwritable(folder)
        if reason is None:
            try:
                return open(self.path, "a+", encoding="utf-8")
            except OSError as exc:  # what unwritable() cannot see: a lock file of another user, an ACL
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{folder}: cannot write in this run folder ({reason}); copy it to a folder you can "
                          f"write and give the copy")

    def release(self) -> None:
        """Empty the file (a clean end leaves no holder to name) and drop the flock (idempotent)."""
        if self._file is None:
            return
        held = _HELD.get(self._key)
        if held is not None and held[1] > 1:
            held[1] -= 1
            self._file = None
            return
        _HELD.pop(self._key, None)
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
        except OSError:  # a full disk or a removed folder: the flock still goes with the file
            pass
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None


def run_folder_of(path: str | Path) -> Path | None:
    """The run folder ``path`` is, or lies directly in (a folder holding config.yaml), if any."""
    path = Path(path)
    for folder in (path, path.parent):
        if RunLayout(folder).config_path.is_file():
            return folder
    return None


@contextmanager
def writing_into(path: str | Path) -> Iterator[None]:
    """Hold the lock of the run folder that ``path`` is or lies in (``eval``'s eval-<data>/,
    ``derive``'s drawings and capped genotypes) while the block writes; nothing elsewhere."""
    folder = run_folder_of(path)
    lock = None if folder is None else RunLock(folder).acquire()
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
