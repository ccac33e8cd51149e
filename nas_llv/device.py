"""Where to compute: ``auto`` picks CUDA when present, else the CPU; how many CPU threads."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from nas_llv.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")  # or cuda:N

if TYPE_CHECKING:
    import torch


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not all the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads (None: OMP_NUM_THREADS when set, else ``available_cores()``).

    Before torch is imported this only sets OMP_NUM_THREADS, so commands that never load torch
    stay fast; afterwards it also calls ``torch.set_num_threads``.
    """
    if n is None:
        n = int(os.environ.get("OMP_NUM_THREADS") or available_cores())
    os.environ["OMP_NUM_THREADS"] = str(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(device: torch.device | None = None, mmap_mb: int = 32, trim_mb: int = 256) -> bool:
    """Let glibc's malloc keep freed image-sized buffers for reuse instead of handing them back to
    the OS, for a network that runs on ``device`` (default: the CPU); True where it applied.

    By default glibc serves a block above its (adaptive) mmap threshold with a fresh mapping and
    returns a freed heap top above its trim threshold to the OS, so the full-size activations of
    an inference forward keep faulting their pages in again: about 26,000 page faults and half
    the CPU time in the kernel per 600x400 RUAS forward on 2 threads. Fixing the mmap threshold at
    ``mmap_mb`` (32 MB is glibc's largest) and the trim threshold at ``trim_mb`` keeps them in
    the heap: in ``benchmarks/inference.py`` the plain path went from 206 to 160-170 ms and the
    folded one from 75 to 66-68 ms (``benchmarks/README.md``, inference). The price is up to
    ``trim_mb`` of freed memory the process keeps. It does not apply to a CUDA network (its
    activations are not malloc's), off glibc, nor where the user set a ``MALLOC_*`` variable
    (theirs wins). The search gains nothing measurable from it (few faults), so only the
    inference commands call it."""
    if device is not None and device.type != "cpu":
        return False
    if any(k.startswith("MALLOC_") for k in os.environ) or not _is_glibc():
        return False
    import ctypes

    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_mb << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_mb << 20))


def _is_glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; clear errors otherwise."""
    import torch

    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device '{name}'; allowed: {', '.join(DEVICES)} (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available here; use --device cpu or auto")
    return torch.device(name)
