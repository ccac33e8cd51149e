"""Big images in tiles: run a network on overlapping pieces of an image that does not fit in memory.

Each tile of ``tile`` x ``tile`` pixels is run with ``pad`` pixels of its neighbours around it
(the image's own border where there are none), and only the tile's own part of the output is
kept. A fully convolutional network's output pixel depends on the input within its receptive
field. So where ``pad`` covers that field, a tiled output equals the whole-image output: no seam
to blend, which ``tests/test_tiles.py`` checks. RUAS's scene and denoising modules reach about 30
pixels, so the default ``pad`` is 32.

``Tiler`` without a fixed side decides from memory for an image over 4 MP (smaller ones run
whole): the bytes a pixel costs (the activations of one forward pass on a 64 x 64 probe, summed
over modules, an upper bound under ``no_grad``) against half of what is free (the device's free memory on CUDA; on CPU the least of MemAvailable, the cgroup's limit and
the address-space limit).
"""
from __future__ import annotations

import math
import resource
from pathlib import Path
from typing import Callable

import torch

from nas_llv.config import ConfigError

Runner = Callable[[torch.Tensor], torch.Tensor]
DEFAULT_PAD = 32
# Pixels above which an image is refused before it is decoded (``--max-pixels``): 300 M holds a
# 12000 x 9000 photograph (108 M) with room. It replaces Pillow's decompression-bomb warning.
MAX_PIXELS = 300_000_000
PROBE = 64
MIN_TILE = 64
WHOLE_UP_TO = 4_000_000  # pixels: an image this small runs whole without asking (no probe)


def run_tiled(fn: Runner, y: torch.Tensor, tile: int, pad: int = DEFAULT_PAD) -> torch.Tensor:
    """``fn(y)`` assembled from tiles; y: (N, C, H, W) -> (N, C', sH, sW) for a network of scale s.

    ``tile`` <= 0, or an image no larger than one tile, runs whole."""
    h, w = y.shape[-2:]
    if tile <= 0 or (h <= tile and w <= tile):
        return fn(y)
    out: torch.Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            piece = fn(y[..., t0:min(bottom + pad, h), l0:min(right + pad, w)])
            s = piece.shape[-1] // (min(right + pad, w) - l0)  # the network's scale
            if out is None:
                out = piece.new_empty(*piece.shape[:2], h * s, w * s)
            out[..., top * s:bottom * s, left * s:right * s] = piece[
                ..., (top - t0) * s:(bottom - t0) * s, (left - l0) * s:(right - l0) * s]
    assert out is not None
    return out


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_room() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - used


def _address_space_room() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        vm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                  if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None
    return soft - vm


def free_memory(device: torch.device) -> int:
    """Bytes this process may still take on ``device`` (CPU: the least of the known limits)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    known = [m for m in (_meminfo_available(), _cgroup_room(), _address_space_room()) if m is not None]
    return max(min(known), 0) if known else 8 * 1024 ** 3


@torch.no_grad()
def bytes_per_pixel(fn: Runner, channels: int, device: torch.device) -> float:
    """What one input pixel costs in one forward pass: every module's output summed on a probe."""
    total = 0

    def count(module: torch.nn.Module, inputs: object, output: object) -> None:
        nonlocal total
        for t in output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else [output]:
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        fn(torch.rand(1, channels, PROBE, PROBE, device=device))
    finally:
        handle.remove()
    # an input and an output beside the activations (an engine without modules counts those alone)
    return max(total, 2 * channels * PROBE * PROBE * 4) / (PROBE * PROBE)


def check_tile(tile: int | None) -> None:
    """``--tile``: None (from the free memory), 0 (never) or a side in pixels."""
    if tile is not None and tile < 0:
        raise ConfigError(f"--tile {tile}: expected a side in pixels >= 0 (0: whole images)")


class Tiler:
    """``fn`` over images, each whole or in tiles: ``tile`` > 0 fixes the side, 0 never tiles, None
    decides per image from the free memory (``side``; the probe runs once)."""

    def __init__(self, fn: Runner, tile: int | None = None, pad: int = DEFAULT_PAD) -> None:
        check_tile(tile)
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.fn, self.tile, self.pad = fn, tile, pad
        self._per_pixel: float | None = None

    def side(self, y: torch.Tensor) -> int:
        if self.tile is not None:
            return self.tile
        if y.shape[-2] * y.shape[-1] <= WHOLE_UP_TO:
            return 0
        if self._per_pixel is None:
            self._per_pixel = bytes_per_pixel(self.fn, y.shape[1], y.device)
        room = free_memory(y.device) // 2
        if y.shape[-2] * y.shape[-1] * self._per_pixel <= room:
            return 0
        return max(int(math.sqrt(room / self._per_pixel)) - 2 * self.pad, MIN_TILE)

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return run_tiled(self.fn, y, self.side(y), self.pad)
