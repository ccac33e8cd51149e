"""The nas-llv model file: a fixed network that rebuilds from the file alone.

A model file is a ``torch.save``d mapping::

    {"nas_llv": "0.1.0",                        # package version that wrote it
     "genotype": Genotype.to_dict(),            # network builder, resolved spaces, choices
     "build": {"channels": 16, "repeat": 5},    # Genotype.build arguments (full-size rebuild)
     "state_dict": {...},                       # the weights
     "extra": {...}}                            # free-form provenance (import source, ...)

``load_model`` needs nothing but this file (nanoGPT's checkpoints work the same way).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from nas_llv import __version__
from nas_llv.config import ConfigError
from nas_llv.space.genotype import Genotype, genotype_from_dict
from nas_llv.space.supernet import current_state_keys
from nas_llv.atomic import atomic_write_bytes, torch_bytes
from nas_llv.layout import MODEL, RunLayout
from nas_llv.safe_load import load_torch_file

log = logging.getLogger(__name__)

BUILD_KEYS = ("channels", "repeat")


def save_model(path: str | Path, genotype: Genotype, net: nn.Module, build: Mapping[str, Any] | None = None,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``net``'s weights with everything needed to rebuild it, atomically."""
    build = dict(build or {})
    unknown = sorted(set(build) - set(BUILD_KEYS))
    if unknown:
        raise ConfigError(f"save_model: unknown build keys {unknown}; allowed: {', '.join(BUILD_KEYS)}")
    payload = {
        "nas_llv": __version__,
        "genotype": genotype.to_dict(),
        "build": build,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "extra": dict(extra or {}),
    }
    return atomic_write_bytes(path, torch_bytes(payload))


def find_model(target: str | Path) -> Path:
    """A model file, or a run folder holding ``model.pt``."""
    path = Path(target)
    if path.is_dir():
        model = RunLayout(path).model_path()
        if model.is_file():
            return model
        raise ConfigError(f"{target}: no {MODEL} in this folder; pass a model file "
                          f"(written by `nas-llv train` or `nas-llv import-ruas`)")
    if not path.is_file():
        raise ConfigError(f"{target}: no such model file or run folder")
    return path


def read_model_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The raw mapping of a model file (or a run folder's ``model.pt``), checked to be one."""
    return _read(find_model(path), map_location)


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    data = load_torch_file(path, "nas-llv model file", map_location)
    if not isinstance(data, dict) or "nas_llv" not in data or "state_dict" not in data:
        raise ConfigError(f"{path}: not a nas-llv model file (no 'nas_llv'/'state_dict' keys); "
                          f"published RUAS weights are converted with `nas-llv import-ruas`")
    return data


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, Genotype]:
    """Rebuild the network of a model file (or a run folder's ``model.pt``), in eval mode."""
    path = find_model(path)
    data = _read(path, map_location)
    genotype = genotype_from_dict(data["genotype"], f"{path}: genotype")
    build = data.get("build") or {}
    net = genotype.build(**{k: build.get(k) for k in BUILD_KEYS})
    load_weights(net, data["state_dict"], str(path), "the network its genotype builds",
                 f"they are not of the build the file records ({build or 'the genotype sizes'})")
    if data["nas_llv"] != __version__:
        log.info("%s was written by nas-llv %s (this is %s)", path, data["nas_llv"], __version__)
    return net.to(map_location).eval(), genotype


def load_weights(net: nn.Module, state: Mapping[str, Any], where: str, network: str = "the network",
                 hint: str = "") -> None:
    """Load ``state`` into ``net`` when it fits exactly (same keys, same shapes), else raise one
    ConfigError line: ``{where}: the weights do not fit {network}: missing [...]; ...; {hint}``.
    Cell keys of files written before a rename are read under their new names (``current_state_keys``)."""
    state = current_state_keys(net, state)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(getattr(v, 'shape', ()))} vs {tuple(own[k].shape)}"
                  for k, v in state.items() if k in own and getattr(v, "shape", None) != own[k].shape]
    problems = [f"{what} {_few(keys)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape (file vs network)", mismatched)) if keys]
    if problems:
        raise ConfigError(f"{where}: the weights do not fit {network}: {'; '.join(problems)}"
                          + (f"; {hint}" if hint else ""))
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ConfigError(f"{where}: weights {_few(bad)} hold NaN or infinite values (the training that wrote "
                          f"them diverged); refusing to run them")
    net.load_state_dict(state)


def _few(keys: list[str], n: int = 4) -> str:
    return "[" + ", ".join(keys[:n]) + (f", ... ({len(keys) - n} more)" if len(keys) > n else "") + "]"
