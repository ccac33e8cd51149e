"""P-DARTS' cap on skip ops (Chen et al., ICCV 2019; docs/remedies.md) as the extension
``search.max_skip``: every architecture the search derives from α (the best, the final, an earlier
one after a DARTS-ES stop) keeps at most ``max_skip`` skip ops per cell. The cap itself is the
space's (``space/skip_cap.py``), which ``nas-llv derive --max-skip`` applies after a search too.
"""
from __future__ import annotations

from typing import Any

from nas_llv.config import check_range
from nas_llv.search.extensions.base import Choices, Extension, Search, Probs, drawn_not_derived, register
from nas_llv.space.skip_cap import capped


@register("max_skip", int)
class MaxSkip(Extension):
    """P-DARTS: at most max_skip skip ops per cell of every derived genotype (an int; null: no cap)."""

    order = 60

    @classmethod
    def check(cls, options: int, search: Any) -> None:
        check_range("max_skip", options, 0)
        drawn_not_derived("max_skip", search)

    def setup(self, search: Search) -> None:
        self.network, self.spaces = search.network_cfg, search.spaces

    def derive(self, choices: Choices, probs: Probs) -> tuple[Choices, dict[str, Any]]:
        return capped(choices, probs, self.network, self.spaces, self.options)
