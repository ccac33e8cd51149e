"""The input size costs are stated at, unless a command or a recipe names another: the FLOPs
``nas-llv derive`` and a finished search's summary print, a sweep's summary and its
``--max-gflops`` limit, and a search's cost term (``search.cost.size``, docs/cost.md). No torch:
argument parsers show it in their help."""
from __future__ import annotations

REFERENCE_SIZE: tuple[int, int] = (600, 400)  # (width, height) of the input, pixels


def size_text(size: tuple[int, int]) -> str:
    """``(600, 400)`` -> ``'600x400'``, width first, as ``--size`` takes it."""
    return f"{size[0]}x{size[1]}"
