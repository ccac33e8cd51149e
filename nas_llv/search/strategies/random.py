"""Strategy ``random``: the random-search baseline (Li & Talwalkar 2019; Yu et al. 2020), a
multi-trial strategy (``search/loops/multi_trial.py`` runs it).

Its ``search.epochs`` candidates are genotypes drawn uniformly from the searched spaces (every
label's choice independently, seeded by the recipe's ``seed``); with ``search.cost.limit``,
uniformly among the genotypes costing at most the limit (``space.cost.draw_under``). Each is
trained from the supernet's initial weights with α one-hot on its choices, by fresh weight
optimizers (``search.weights``) alone, and scored on the validation batches the first candidate
drew, so the scores compare networks, not batches.

The weights are trained with the levels, losses and validation objective of another strategy
(``levels_of``, default cooperative), so random search and the search it is compared with
optimise the same objectives; only the arch steps are left out. docs/random.md says what equal
compute means.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from nas_llv.config import check_range
from nas_llv.job import on_device
from nas_llv.registry import STRATEGIES
from nas_llv.search.level import Batch, Level, Scalar
from nas_llv.search.strategy import Losses, Strategy, weight_optimizer
from nas_llv.space.genotype import random_choices


def one_shot_strategies() -> list[str]:
    """The strategies whose levels can train a candidate (``levels_of``): those of kind one_shot."""
    return [n for n in STRATEGIES.names() if STRATEGIES.get(n).kind == "one_shot"]


@dataclass(frozen=True)
class RandomConfig:
    """Options of strategy ``random``: ``search.epochs`` candidates, ``search.steps_per_epoch``
    training iterations each."""

    levels_of: str = "cooperative"   # the strategy whose levels (weights, losses) train each candidate
    beta: float = 1.0                # that strategy's beta, where it has one

    def validate(self) -> None:
        check_range("beta", self.beta, 0.0)
        if self.levels_of not in one_shot_strategies():
            raise ValueError(f"levels_of={self.levels_of!r} is not a strategy random search can train with; "
                             f"allowed: {', '.join(one_shot_strategies())}")


def levels_strategy(cfg: Any, opts: RandomConfig) -> Strategy:
    """The ``levels_of`` strategy, its options at their defaults but ``beta`` (where it has one)."""
    options_cls = STRATEGIES.config_of(opts.levels_of)
    options = None
    if options_cls is not None:
        has_beta = "beta" in {f.name for f in dataclasses.fields(options_cls)}
        options = options_cls(**({"beta": opts.beta} if has_beta else {}))
    return STRATEGIES.get(opts.levels_of)(cfg, options)


@STRATEGIES.register("random", config=RandomConfig)
class RandomSearch(Strategy):
    """Epoch e trains and scores candidate e (``samples[e]``); see the module docstring."""

    kind = "multi_trial"
    warms_up = False

    def __init__(self, cfg: Any, opts: RandomConfig) -> None:
        super().__init__(cfg, opts)
        self.inner = levels_strategy(cfg, opts)
        self.samples: list[dict[str, str]] = []
        self.val_losses: dict[int, float] = {}   # candidate (0-based) -> its mean validation loss
        self.val_batches: list[Batch] = []       # the first candidate's, reused for every candidate
        self.current = 0

    def needed_losses(self, net: nn.Module) -> list[str]:
        return self.inner.needed_losses(net)

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        """The ``levels_of`` strategy's levels, and the candidates drawn."""
        from nas_llv.space.supernet import arch_modules  # on use: listing the strategies stays light

        self.net, self.levels = net, self.inner.build_levels(net, losses)
        labels = {label: names for m in arch_modules(net) for label, names in m.candidates.items()}
        # drawn from the RNG the loop seeded with the recipe's seed, so the candidates follow it
        generator = torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        self.samples = [self._draw(labels, generator) for _ in range(self.cfg.epochs)]
        self.initial = {k: v.detach().clone() for k, v in net.state_dict().items()}
        return self.levels

    def _draw(self, labels: Mapping[str, tuple[str, ...]], generator: torch.Generator) -> dict[str, str]:
        """A uniform candidate; with ``search.cost.limit``, uniform among those at or under it."""
        limit = self.cfg.cost.limit if self.cfg.cost is not None else None
        if limit is None:
            return random_choices(labels, generator)
        from nas_llv.space.cost import draw_under

        return draw_under(self.cost_table, limit, labels, generator)

    def start_epoch(self, epoch: int) -> None:
        """Candidate ``epoch`` becomes current: the initial weights, α one-hot on its choices, a
        new weight optimizer per level (at ``search.weights.lr``, no state)."""
        from nas_llv.space.supernet import set_one_hot

        self.current = epoch
        self.net.load_state_dict(self.initial)
        set_one_hot(self.net, self.samples[epoch])
        for level in self.levels.values():
            level.attach(weight_optimizer(self.cfg, level), None, self.cfg.weights.grad_clip)

    def extra_columns(self) -> dict[str, Scalar]:
        return self.inner.extra_columns()

    @torch.no_grad()
    def score(self, levels: Mapping[str, Level], next_val: Callable[[], Batch], count: int,
              device: torch.device) -> float:
        """The current candidate's validation loss, kept in ``val_losses``: the ``levels_of``
        strategy's validation objective, averaged over ``count`` batches, the first candidate's
        (``next_val`` draws them then)."""
        if not self.val_batches:
            self.val_batches = [next_val() for _ in range(count)]
        loss = sum(self.inner.val_loss(levels, on_device(b, device)) for b in self.val_batches) / count
        self.val_losses[self.current] = loss
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"random": {"samples": self.samples, "val_losses": self.val_losses, "current": self.current,
                           "val_batches": [on_device(b, "cpu") for b in self.val_batches]}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        own = state["random"]
        self.samples, self.val_losses = list(own["samples"]), dict(own["val_losses"])
        self.current, self.val_batches = int(own["current"]), list(own["val_batches"])
