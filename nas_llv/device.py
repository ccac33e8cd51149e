"""Where to compute: ``auto`` picks CUDA when present, else the CPU."""
from __future__ import annotations

import torch

from nas_llv.choices import DEVICES
from nas_llv.config import ConfigError


def resolve_device(name: str | torch.device) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; clear errors otherwise."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"unknown device '{name}'; allowed: {', '.join(DEVICES)} (or cuda:N)")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available here; use --device cpu or auto")
    return torch.device(name)
