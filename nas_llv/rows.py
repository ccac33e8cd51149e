"""Trajectory rows and finiteness checks kept on the device between host reads (``speed.sync_every``).

A search step's figures (losses, op probabilities, the hypergradient's ε, ...) are 0-dim tensors on
the device. Reading each to the host (``float(t)``) makes the host wait for the device at every
step, so on a GPU the host cannot queue the next step's kernels while the device runs this one.
``PendingRows`` keeps each step's row and its finiteness flags as tensors and reads all of them in
one transfer every ``every`` steps (``flush``), then writes the rows and raises ``Diverged`` for the
first step that had a NaN or an infinity. With ``every == 1`` (the default) that is once per step,
as a run always did, and the rows are the same to the last digit either way. ``Job.check_finite``
is the same check read at once (a training step, an epoch's validation loss).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch

# (step, module, what, name, shown value) -> the exception to raise for that non-finite entry
DivergedError = Callable[[int, str, str, str, Any], Exception]


@dataclass
class _Pending:
    step: int
    module: str
    row: dict[str, Any]
    # (what, name, value): a number, a 0-dim tensor (a copy: shown by its value), or None for a
    # larger tensor, whose flag in ``flags`` (in the order of the Nones) is 1 where it is finite
    checks: list[tuple[str, str, Any]]
    flags: torch.Tensor | None


class PendingRows:
    """Rows waiting for one host read; ``add`` then ``due`` tells when to ``flush``."""

    def __init__(self, every: int = 1) -> None:
        self.every = every
        self.pending: list[_Pending] = []

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, step: int, module: str, row: Mapping[str, Any], checks: Mapping[str, Mapping[str, Any]]) -> None:
        """Keep ``row`` (numbers, strings or 0-dim tensors) and the finiteness checks of step ``step``:
        ``checks`` maps what is checked ("weight") to name -> value (a number or a tensor). Tensors are
        copied (a scalar) or reduced to a flag (a larger one) now, on the device, since a parameter
        changes in place after."""
        entries, larger = [], []
        for what, values in checks.items():
            for name, value in values.items():
                if torch.is_tensor(value) and value.is_floating_point():
                    if value.numel() == 1:
                        entries.append((what, name, _snapshot(f"{what} {name}", value)))
                    else:
                        entries.append((what, name, None))
                        larger.append(value.detach())
                elif isinstance(value, float):
                    entries.append((what, name, value))
        row = {k: _snapshot(f"trajectory column {k!r}", v) if torch.is_tensor(v) else v for k, v in row.items()}
        self.pending.append(_Pending(step, module, row, entries, finite_flags(larger) if larger else None))

    def due(self) -> bool:
        return len(self.pending) >= self.every

    def flush(self, write: Callable[[dict[str, Any]], None], diverged: DivergedError) -> None:
        """Read every pending tensor in one transfer per device, then write the rows in order up to
        the first step with a non-finite entry, and raise ``diverged(...)`` for it."""
        pending, self.pending = self.pending, []
        tensors: list[torch.Tensor] = []
        for p in pending:
            tensors += [v for v in p.row.values() if torch.is_tensor(v)]
            tensors += [v for _, _, v in p.checks if torch.is_tensor(v)]
            if p.flags is not None:
                tensors.append(p.flags)
        values = _read(tensors)
        for p in pending:
            flags = iter(values[id(p.flags)] if p.flags is not None else [])
            for what, name, value in p.checks:
                shown = "nan or inf" if value is None else values[id(value)] if torch.is_tensor(value) else value
                if not (next(flags) if value is None else math.isfinite(shown)):
                    raise diverged(p.step, p.module, what, name, shown)
            write({k: values[id(v)] if torch.is_tensor(v) else v for k, v in p.row.items()})


def finite_flags(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(len(tensors),) bool: whether each tensor is finite throughout. Where they share a device and a
    dtype, each one's largest |value| comes from one foreach kernel (a NaN or an inf stays one), so
    a search's few hundred weights cost a handful of operators (GPU launches), not four each."""
    if len({(t.device, t.dtype) for t in tensors}) == 1 and all(t.numel() for t in tensors):
        return torch.isfinite(torch.stack(torch._foreach_norm(tensors, float("inf"))))
    return torch.stack([torch.isfinite(t).all() for t in tensors])


def _snapshot(what: str, value: torch.Tensor) -> torch.Tensor:
    """A 0-dim float64 copy of a one-element tensor (a parameter or a view may change in place
    before the flush reads it)."""
    if value.numel() != 1:
        raise TypeError(f"{what}: expected a scalar, got a tensor of shape {tuple(value.shape)}")
    return value.detach().reshape(()).to(torch.float64, copy=True)


def _read(tensors: list[torch.Tensor]) -> dict[int, Any]:
    """id(tensor) -> its value on the host (a float for a 0-dim tensor, else a flat list): one
    ``tolist`` per device, of all its tensors joined in float64 (exact for every float dtype and bool)."""
    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for t in tensors:
        by_device.setdefault(t.device, []).append(t)
    out: dict[int, Any] = {}
    for group in by_device.values():
        flat = torch.cat([t.reshape(-1).to(torch.float64) for t in group]).tolist()
        at = 0
        for t in group:
            n = t.numel()
            out[id(t)] = flat[at] if t.dim() == 0 else flat[at:at + n]
            at += n
    return out
