"""FairDARTS' zero-one loss (Chu et al., ECCV 2020, "Fair DARTS: Eliminating Unfair Advantages in
Differentiable Architecture Search"; docs/remedies.md), an α-only penalty of the upper loss
(``Level.penalties``, attached by ``level.attach_penalty``).

With the sigmoid relaxation (``search.relaxation: sigmoid``) every op of an edge has its own weight
σ(α_i), so ops no longer compete through a softmax and skip connections lose their unfair
advantage; the zero-one loss then pushes each σ(α_i) away from 0.5, towards 0 or 1, so that the
supernet the search trains is close to the network derived from it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch


@dataclass(frozen=True)
class ZeroOne:
    """``weight`` · L_01, L_01 = -(1/N) Σ_i (σ(α_i) - 0.5)² over the N α entries of a level, added to
    its upper loss (the paper's weight w_01 is 10). ``weights``: label -> σ(α) (the sigmoid relaxation's mixing
    weights, each in (0, 1)); the value lies in [-weight/4, 0]."""

    weight: float
    name: str = "zero_one"

    def __call__(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        sigma = torch.cat([w.flatten() for w in weights.values()])
        return -self.weight * (sigma - 0.5).square().mean()
