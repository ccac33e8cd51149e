"""Atomic writes: a killed run never leaves a torn file behind (``nas_llv.safe_load`` is the
reading side: no file a user hands over runs code when it is read)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from nas_llv.diskfull import disk_full, free_bytes, is_disk_full, size_of

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; a finished file gets the mode an ordinary open() would give it.
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it over ``path``.

    The temp file is ``.<name>.<random>.tmp``; one a kill left behind is removed by
    ``remove_temp_files`` (a run folder does so when it is reopened or closed). A full disk raises
    ``diskfull.DiskFull`` (one line) and leaves ``path`` as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        written = size_of(Path(tmp))
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(exc, path.parent):
            raise disk_full(path, written) from None
        raise
    return path


def torch_bytes(obj: Any) -> bytes:
    """``torch.save(obj)`` into memory."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` to ``path`` atomically, refused up front (DiskFull) when it cannot fit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(data) > free_bytes(path.parent):
        raise disk_full(path, len(data))
    return atomic_write(path, lambda p: p.write_bytes(data))


def remove_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temp files ``atomic_write`` left in ``folder`` when its process was killed."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_yaml(path: str | Path, data: Any) -> Path:
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    return atomic_write(path, lambda p: p.write_text(text))


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))
