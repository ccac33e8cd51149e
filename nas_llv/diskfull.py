"""A full disk in one line: ``DiskFull`` names the device, the file, what the write needed and
what was free, instead of a 25-55 line traceback ending in torch's ``unexpected pos`` or
``basic_ios::clear: iostream error``, which say nothing of space.

``atomic.atomic_write`` raises it for every write of nas-llv (config, trajectory, checkpoints,
model files, images, eval outputs, ONNX), after removing its temp file, so the target keeps its
previous content or stays absent. torch's writer reports a full disk as a RuntimeError without an
errno; a write that fails while its file system has almost nothing free is taken for one.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from nas_llv.config import ConfigError

MB = 1024 * 1024
NEARLY_FULL = 256 * 1024  # bytes free under which a failed write is put down to space


class DiskFull(ConfigError):
    """No space left on the device of a write."""


def mount_point(path: Path) -> Path:
    """The mount point that holds ``path`` (an existing file or folder)."""
    path = path.resolve()
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc``, raised by a write into ``folder``, comes from a full disk."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, (OSError, RuntimeError)) and free_bytes(folder) < NEARLY_FULL


def disk_full(path: Path, needed: int) -> DiskFull:
    """The one-line error for a write of ``needed`` bytes (at least) to ``path`` that did not fit."""
    folder = path.parent
    try:
        device = mount_point(folder)
    except OSError:
        device = folder
    free = free_bytes(folder)
    return DiskFull(f"no space left on {device} writing {path} ({max(needed, 1) / MB:.1f} MB needed, "
                    f"{free / MB:.1f} MB free); free some space and run again")


def size_of(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
