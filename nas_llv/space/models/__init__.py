"""Models and networks built from search spaces.

``MODELS`` and ``NETWORKS`` import every module in this package on their first lookup
(``nas_llv.registry``), which registers them: a new model or network is one new file here.
"""
from __future__ import annotations

from nas_llv.space.models.base import CellStack, build_derived, build_module, build_searchable, build_supernet, resize_space
from nas_llv.space.models.networks import RUAS, build_fixed_network, build_search_network

__all__ = [
    "CellStack", "RUAS", "build_derived", "build_module", "build_searchable", "build_supernet",
    "resize_space", "build_fixed_network", "build_search_network",
]
