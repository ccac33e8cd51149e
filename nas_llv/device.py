"""Where to compute: ``auto`` picks CUDA when present, else the CPU; how many CPU threads."""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from nas_llv.choices import DEVICES
from nas_llv.config import ConfigError

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
