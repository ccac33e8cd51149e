"""Options of the DARTS-collapse remedies a search can switch on (docs/remedies.md).

Each is one key of the ``search:`` section, null (the default) for off. The options live on the
ground floor, beside the recipe that holds them (the recipe may not import ``search/``); what
each remedy does lives in the module of ``search/`` named after its key.
"""
from __future__ import annotations

from dataclasses import dataclass

from nas_llv.config import check_range


@dataclass(frozen=True)
class PerturbConfig:
    """SDARTS-RS (Chen & Hsieh 2020): uniform noise in [-epsilon, epsilon] on α in each weight step."""

    epsilon: float = 0.03    # paper: 0.03

    def validate(self) -> None:
        check_range("epsilon", self.epsilon, 0.0)


@dataclass(frozen=True)
class AuxSkipConfig:
    """DARTS- (Chu et al. 2021): an auxiliary skip β·x on every mixed edge, β decaying to 0."""

    weight: float = 1.0      # β at the first epoch (paper: 1)

    def validate(self) -> None:
        check_range("weight", self.weight, 0.0, lo_open=True)
