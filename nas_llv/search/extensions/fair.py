"""FairDARTS' zero-one loss (Chu et al., ECCV 2020, "Fair DARTS: Eliminating Unfair Advantages in
Differentiable Architecture Search"; docs/remedies.md), an α-only penalty of the upper loss
(``Level.penalties``, attached by ``level.attach_penalty``): the extension ``search.zero_one``.

With the sigmoid relaxation (``search.relaxation: sigmoid``) every op of an edge has its own weight
σ(α_i), so ops no longer compete through a softmax and skip connections lose their unfair
advantage; the zero-one loss then pushes each σ(α_i) away from 0.5, towards 0 or 1, so that the
supernet the search trains is close to the network derived from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from nas_llv.config import check_range
from nas_llv.search.extensions.base import Extension, Search, drawn_not_derived, register
from nas_llv.search.level import attach_penalty


@dataclass(frozen=True)
class ZeroOne:
    """``weight`` · L_01, L_01 = -(1/N) Σ_i (σ(α_i) - 0.5)² over the N α entries of a level, added to
    its upper loss (the paper's weight w_01 is 10). ``probs``: label -> σ(α) (the sigmoid relaxation's op
    probabilities, each in (0, 1)); the value lies in [-weight/4, 0]."""

    weight: float
    name: str = "zero_one"

    def __call__(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        sigma = torch.cat([p.flatten() for p in probs.values()])
        return -self.weight * (sigma - 0.5).square().mean()


@register("zero_one", float, off=0.0)
class FairZeroOne(Extension):
    """FairDARTS' zero-one loss of weight zero_one (a number; 0: off), with relaxation: sigmoid.

    The paper's weight w_01 is 10 (docs/remedies.md)."""

    order = 40

    @classmethod
    def check(cls, options: float, search: Any) -> None:
        check_range("zero_one", options, 0.0)
        if search.relaxation != "sigmoid":
            raise ValueError(f"zero_one={options} needs relaxation: sigmoid (the zero-one loss drives each "
                             f"σ(α_i) to 0 or 1; softmax weights compete and sum to 1); set relaxation: sigmoid "
                             f"or zero_one: 0")
        drawn_not_derived("zero_one", search)

    def attach(self, search: Search) -> None:
        attach_penalty(search.levels, ZeroOne(self.options))

