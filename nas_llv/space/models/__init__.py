"""Models built from search spaces (importing registers them)."""
from __future__ import annotations

from nas_llv.space.models import ruas  # noqa: F401  (registers ruas_scene, ruas_denoise)
from nas_llv.space.models import llsr  # noqa: F401  (registers trico_llsr, collaba_llsr)
from nas_llv.space.models import highlevel  # noqa: F401  (registers the ruas_highlevel network)
from nas_llv.space.models.base import CellStack, build_derived, build_module, build_searchable, build_supernet, resize_space
from nas_llv.space.models.networks import RUAS, build_fixed_network, build_search_network

__all__ = [
    "CellStack", "RUAS", "build_derived", "build_module", "build_searchable", "build_supernet",
    "resize_space", "build_fixed_network", "build_search_network",
]
