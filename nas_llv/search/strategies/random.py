"""Strategy ``random``: the random-search baseline (Li & Talwalkar 2019; Yu et al. 2020).

Each epoch is one candidate: a genotype drawn uniformly from the searched spaces (every label's
choice independently, seeded by the recipe's ``seed``), trained from the supernet's initial weights
with α fixed one-hot on its choices, by the weight optimizer (``search.weights``, its state fresh
and its lr back at the base value) alone, for ``search.steps_per_epoch`` iterations. The loop's
end-of-epoch validation then scores it; every candidate is scored on the same validation batches
(those the first candidate drew), so the scores compare networks, not batches. The run's
``genotype.yaml`` is the candidate with the lowest validation loss, ``candidates.csv`` lists all
(with each one's cost under ``search.cost``). With ``search.cost.limit`` the candidates are drawn
uniformly among the genotypes costing at most the limit (``space.cost.draw_under``).

The weights are trained with the levels, losses and validation objective of another strategy
(``levels_of``, default cooperative), so random search and the search it is compared with
optimise the same objectives; only the arch steps are left out. docs/random.md says what equal
compute means.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from nas_llv.config import check_range, load_yaml
from nas_llv.atomic import write_text, write_yaml
from nas_llv.registry import STRATEGIES
from nas_llv.layout import RunLayout
from nas_llv.search.level import Batch, Level, LossClosure
from nas_llv.search.strategy import Losses, Strategy
from nas_llv.space.genotype import random_choices


@dataclass(frozen=True)
class RandomConfig:
    """Options of strategy ``random``: ``search.epochs`` candidates, ``search.steps_per_epoch``
    training iterations each."""

    levels_of: str = "cooperative"   # the strategy whose levels (weights, losses) train each candidate
    beta: float = 1.0                # that strategy's beta, where it has one

    def validate(self) -> None:
        check_range("beta", self.beta, 0.0)
        if self.levels_of == "random" or self.levels_of not in STRATEGIES:
            allowed = ", ".join(n for n in STRATEGIES.names() if n != "random")
            raise ValueError(f"levels_of={self.levels_of!r} is not a strategy random search can train with; "
                             f"allowed: {allowed}")


class FrozenLevel(Level):
    """A level of another strategy with its upper variables left as they are: its weights and
    objectives, one weight step per iteration and no upper step."""

    def __init__(self, inner: Level) -> None:
        self.inner, self.name, self.module = inner, inner.name, inner.module
        self.upper, self.lower = {}, inner.lower

    def objective(self, batch: Batch, train: bool) -> LossClosure:
        return self.inner.objective(batch, train)

    def iterate(self, method: Any, next_train: Callable[[], Batch], next_val: Callable[[], Batch]
                ) -> tuple[float, dict[str, float], Batch]:
        loss, terms = self.weight_step(next_train())
        return loss, terms, next_val()


def _on(batch: Batch, device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


@STRATEGIES.register("random", config=RandomConfig)
class RandomSearch(Strategy):
    """Epoch e trains and scores candidate e (``samples[e]``); see the module docstring."""

    def __init__(self, cfg: Any, opts: RandomConfig) -> None:
        super().__init__(cfg, opts)
        options_cls = STRATEGIES.config_of(opts.levels_of)
        inner_opts = None
        if options_cls is not None:
            has_beta = "beta" in {f.name for f in dataclasses.fields(options_cls)}
            inner_opts = options_cls(**({"beta": opts.beta} if has_beta else {}))
        self.inner: Strategy = STRATEGIES.get(opts.levels_of)(cfg, inner_opts)
        self.samples: list[dict[str, str]] = []
        self.scores: dict[int, float] = {}       # candidate (0-based) -> summed validation loss
        self.val_batches: list[Batch] = []       # the first candidate's, reused for every candidate
        self.current = self._calls = 0

    def needed_losses(self, net: nn.Module) -> list[str]:
        return self.inner.needed_losses(net)

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        from nas_llv.space.supernet import arch_modules  # on use: listing the strategies stays light

        self.net = net
        self.levels = {name: FrozenLevel(level) for name, level in self.inner.build_levels(net, losses).items()}
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

    def schedule(self, epoch: int) -> list[str]:
        return list(self.levels)

    def start_epoch(self, epoch: int) -> None:
        """Candidate ``epoch``: the initial weights, α one-hot on its choices, a fresh weight
        optimizer at its base lr (the loop's per-epoch lr schedule would otherwise decay it across
        candidates)."""
        from nas_llv.space.supernet import set_one_hot

        self.current, self._calls = epoch, 0
        self.net.load_state_dict(self.initial)
        set_one_hot(self.net, self.samples[epoch])
        for level in self.levels.values():
            level.weight_opt.state.clear()
            for group in level.weight_opt.param_groups:
                group["lr"] = group.get("initial_lr", group["lr"])

    def extra_columns(self) -> dict[str, float]:
        return self.inner.extra_columns()

    def val_loss(self, levels: Mapping[str, Level], batch: Batch) -> float:
        """The ``levels_of`` strategy's validation objective, on the first candidate's batches."""
        k, self._calls = self._calls, self._calls + 1
        if k < len(self.val_batches):
            batch = _on(self.val_batches[k], batch["low"].device)
        else:
            self.val_batches.append(batch)
        loss = self.inner.val_loss(levels, batch)
        self.scores[self.current] = self.scores.get(self.current, 0.0) + loss
        return loss

    def mean_scores(self) -> dict[int, float]:
        """Candidate (0-based) -> its mean validation loss, as the loop's validation computes it."""
        return {c: total / self.cfg.val_batches for c, total in self.scores.items()}

    def finish(self, folder: Path, step: int) -> None:
        """``candidates.csv`` (candidate, val_loss, one column per label), and ``genotype.yaml``
        rewritten to the best candidate (the loop wrote the last one)."""
        scores = self.mean_scores()
        best = min(scores, key=lambda c: (scores[c], c))
        labels = list(self.samples[0])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        table = self.cost_table
        writer.writerow(["candidate", "val_loss", *(["cost"] if table is not None else []), *labels])
        for c, loss in scores.items():
            cost = [repr(table.of(self.samples[c]))] if table is not None else []
            writer.writerow([c + 1, repr(loss), *cost, *(self.samples[c][label] for label in labels)])
        run = RunLayout(folder)
        write_text(run.candidates_path, out.getvalue())
        data = load_yaml(run.genotype_path)
        data["genotype"] = dict(self.samples[best])
        data["meta"] = {**(data.get("meta") or {}), "candidate": best + 1, "candidates": len(scores),
                        "val_loss": scores[best]}
        if self.cost_table is not None:  # the loop's meta described the last candidate
            from nas_llv.search.extensions.cost import cost_meta

            data["meta"]["cost"] = cost_meta(self.cost_table, self.samples[best])
        write_yaml(run.genotype_path, data)

    def state_dict(self) -> dict[str, Any]:
        return {"random": {"samples": self.samples, "scores": self.scores, "current": self.current,
                           "val_batches": [_on(b, "cpu") for b in self.val_batches]}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        own = state["random"]
        self.samples, self.scores = list(own["samples"]), dict(own["scores"])
        self.current, self.val_batches, self._calls = int(own["current"]), list(own["val_batches"]), 0
