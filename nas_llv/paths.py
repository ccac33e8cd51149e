"""Output paths checked before any work starts, so a bad ``-o`` fails at once, in one line.

``check_output_file`` and ``check_output_dir`` raise ConfigError when the path cannot be
written as asked: it lies under an existing file, names a folder where a file is wanted (or a
file where a folder is wanted), or its nearest existing folder is not writable (a read-only or
virtual file system such as /proc). They create nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

from nas_llv.config import ConfigError

VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"))


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """``path`` as a file to (over)write: not a folder, under a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder; give a file path (a new file, or one to overwrite)")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{what} {path}: exists and is not a regular file; give a file name")
    _check_parent(path.parent, path, what)
    return path


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """``path`` as a folder to create or write into: not a file, under (or itself) a writable folder."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: is a file, not a folder; give a folder (created if missing)")
    _check_parent(path, path, what)
    return path


def _check_parent(folder: Path, path: Path, what: str) -> None:
    """The nearest existing one of ``folder`` and its ancestors must be a writable folder."""
    anc = _nearest_existing(folder)
    if anc is None:
        raise ConfigError(f"{what} {path}: no part of this path exists or can be inspected")
    if not anc.is_dir():
        kind = "a file, not a folder" if anc.is_file() else "not a folder"
        raise ConfigError(f"{what} {path}: {anc} is {kind}; choose a path in a folder")
    reason = unwritable(anc)
    if reason:
        raise ConfigError(f"{what} {path}: cannot write in {anc} ({reason}); choose another folder")


def _nearest_existing(path: Path) -> Path | None:
    for p in (path, *path.parents):
        try:
            if p.exists() or p.is_symlink():
                return p
        except OSError:
            return None
    return None


def unwritable(folder: Path) -> str | None:
    """Why nothing can be written in ``folder``, or None when it can."""
    real = folder.resolve()
    if any(real == root or root in real.parents for root in VIRTUAL_ROOTS):
        return f"{real} is on a virtual file system"
    statvfs = getattr(os, "statvfs", None)  # POSIX only
    try:
        if statvfs is not None and statvfs(real).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    if not os.access(real, os.W_OK | os.X_OK):
        return "permission denied"
    return None
