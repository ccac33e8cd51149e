"""SDARTS-RS (Chen & Hsieh, ICML 2020, "Stabilizing Differentiable Architecture Search via
Perturbation-based Regularization"): each weight step minimises L_train(ω, α + δ) for a fresh
δ ~ U[-ε, ε] per element, which smooths the training loss around α so the supernet's weights
do not overfit one sharp point of α. The stored α is untouched: the noisy α reach the training
objective as overrides (``Level.perturbed_alphas``).

The paper writes the perturbed architecture as A + δ; its released code adds δ to softmax(α) and
clips to [0, 1]. Here δ is added to α before the softmax, so the relaxation stays the one
``ArchParams.prob`` applies and the op probabilities stay a distribution.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping

import torch

from nas_llv.config import check_range
from nas_llv.search.extensions.base import Extension, Search, register
from nas_llv.search.level import Level


@dataclass(frozen=True)
class PerturbConfig:
    """SDARTS-RS (Chen & Hsieh 2020): uniform noise in [-epsilon, epsilon] on α in each weight step."""

    epsilon: float = 0.03    # paper: 0.03

    def validate(self) -> None:
        check_range("epsilon", self.epsilon, 0.0)


def uniform_noise(alphas: Mapping[str, torch.Tensor], epsilon: float) -> dict[str, torch.Tensor]:
    """α + δ, δ ~ U[-epsilon, epsilon] elementwise, detached; drawn from torch's global RNG in the
    order of ``alphas``, so seeded and resumed runs (the checkpoint holds the RNG) draw the same."""
    return {n: a.detach() + torch.empty_like(a).uniform_(-epsilon, epsilon) for n, a in alphas.items()}


def attach_perturbation(cfg: PerturbConfig | None, levels: Mapping[str, Level]) -> None:
    """Perturb α in the weight steps of every level that has α (nothing when ``cfg`` is None)."""
    if cfg is None:
        return
    for level in levels.values():
        alphas = level.arch_variables()
        if alphas:
            level.perturbed_alphas = functools.partial(uniform_noise, alphas, cfg.epsilon)


@register("perturb", PerturbConfig)
class Perturb(Extension):
    """SDARTS-RS: the weight steps of each level with α take α + δ, δ ~ U[-ε, ε] (docs/remedies.md)."""

    order = 20

    def attach(self, search: Search) -> None:
        attach_perturbation(self.options, search.levels)
