"""The one-shot loop: one supernet whose upper variables (α, ς) the strategy's levels learn.

Each scheduled level takes one arch step (hypergradient on a validation batch), then the method's
``lower_steps`` weight steps (the first on the same training batch, as in DARTS), and writes one
trajectory row. The end of each epoch validates, keeps the best architecture derived from α, and
steps the lr schedules; the end of the search writes ``genotype.yaml`` (the final α's) and
``genotype_best.yaml``.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import torch

from nas_llv.optim import make_scheduler
from nas_llv.registry import HYPERGRADS, SEARCH_LOOPS
from nas_llv.search.level import Batch, Level, named
from nas_llv.search.loop import Searcher
from nas_llv.search.strategy import weight_optimizer
from nas_llv.space.genotype import Genotype
from nas_llv.space.supernet import Probs, arch_parameters, genotype_of, probs_of

log = logging.getLogger(__name__)


@SEARCH_LOOPS.register("one_shot")
class OneShot(Searcher):
    """Runs a one-shot strategy (``Strategy.kind`` one_shot: cooperative, global, hyper, ...)."""

    def _build(self) -> None:
        self.method = HYPERGRADS.build(self.cfg.hypergrad)
        super()._build()
        self.best: dict[str, Any] = {"val_loss": math.inf, "genotype": None, "epoch": None}

    def _attach_optimizers(self) -> dict[str, Any]:
        """Each level's weight optimizer (``search.weights``) and upper optimizer (the strategy's);
        returns each level's lr schedules (weights, and upper variables where the strategy has one,
        ``Strategy.upper_scheduler``), which span the epochs that level is updated in."""
        schedulers = {}
        for name, level in self.levels.items():
            w_opt = weight_optimizer(self.cfg, level)
            a_opt = self.strategy.upper_optimizer(name, level) if level.upper else None
            level.attach(w_opt, a_opt, self.cfg.weights.grad_clip)
            epochs = len(self.active_epochs(name))
            schedulers[name] = make_scheduler(self.cfg.weights, w_opt, epochs)
            upper = (self.strategy.upper_scheduler(name, a_opt, len(self.active_epochs(name, arch=True)))
                     if a_opt is not None else None)
            if upper is not None:
                schedulers[f"{name}.upper"] = upper
        return schedulers

    def active_epochs(self, level: str, arch: bool = False) -> list[int]:
        """The epochs in which ``level`` is updated (all of them, unless the strategy has phases);
        ``arch``: in which its upper variables are (after ``search.arch_warmup``)."""
        first = self.cfg.arch_warmup if arch else 0
        return [e for e in range(first, self.cfg.epochs) if level in self.strategy.schedule(e)]

    def schedule(self, epoch: int) -> list[str]:
        return self.strategy.schedule(epoch)

    def _update(self, level: Level) -> tuple[float, dict[str, float], Batch]:
        level.arch_held = self.epoch < self.cfg.arch_warmup
        return level.iterate(self.method, lambda: self._batch(self.train_data), lambda: self._batch(self.val_data))

    def _upper_columns(self, level: Level) -> dict[str, float]:
        return {**{f"hypergrad/{k}": v for k, v in self.method.info.items()},
                **{f"penalty/{k}": v for k, v in level.penalty_values.items()}}

    def _end_epoch(self, start: float) -> None:
        val = self.validate()
        self.check_finite("all", {"validation loss": {"mean": val}})
        self.val_loss = val
        if val < self.best["val_loss"] and self.epoch >= self.cfg.arch_warmup:  # α held before: not chosen yet
            choices, meta = self.derived()
            self.best = {"val_loss": val, "genotype": choices, "epoch": self.epoch + 1, "meta": meta}
        log.info("epoch %d/%d: validation loss %.5f (best %.5f at epoch %s)", self.epoch + 1,
                 self.cfg.epochs, val, self.best["val_loss"], self.best["epoch"])
        for name, sched in self.schedulers.items():
            level, _, upper = name.partition(".")
            if self.epoch in self.active_epochs(level, arch=bool(upper)):  # a schedule spans its own epochs
                with warnings.catch_warnings():
                    # after a resume at an epoch boundary the restored optimizer has not stepped in
                    # this process yet; torch's "scheduler before optimizer" warning is a false alarm
                    warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                    sched.step()
        for ext in self.extensions:
            ext.end_epoch(self.epoch)
        self.epoch, self.it = self.epoch + 1, 0
        self.save(start)

    @torch.no_grad()
    def validate(self) -> float:
        """The strategy's validation objective (by default every level's upper loss, summed),
        averaged over ``val_batches`` validation batches."""
        n = self.cfg.val_batches
        return sum(self.strategy.val_loss(self.levels, self._batch(self.val_data)) for _ in range(n)) / n

    # -- results and checkpoints ---------------------------------------------------------------
    def derived(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The current architecture (argmax per edge) through the extensions' ``derive`` (P-DARTS'
        cap on skip ops, ``search.max_skip``), and the meta they record."""
        return self.refine(genotype_of(self.net), probs_of(self.net))

    def refine(self, choices: dict[str, str], probs: Probs) -> tuple[dict[str, str], dict[str, Any]]:
        """``choices`` (argmax of α whose op probabilities are ``probs``, label -> {op: probability})
        through each extension's ``derive``; returns them and the meta entries the extensions add."""
        meta: dict[str, Any] = {}
        for ext in self.extensions:
            choices, extra = ext.derive(choices, probs)
            meta.update(extra)
        return choices, meta

    def genotype(self, choices: dict[str, str] | None = None, val_loss: float | None = None,
                 extra: dict[str, Any] | None = None) -> Genotype:
        """The current architecture (``derived``, scored by the latest epoch's validation loss), or
        ``choices`` (see ``Searcher.genotype``)."""
        if choices is None:
            (choices, extra), val_loss = self.derived(), self.val_loss
        return super().genotype(choices, val_loss, extra)

    def finish(self, start: float | None = None) -> None:
        # never a genotype from NaN probabilities (each step checks α; this guards the file itself)
        self.check_finite("all", {"upper variable (α)": named(self.net, arch_parameters(self.net))})
        if not self.attached_run.writes:  # another rank than 0 of a data-parallel run
            return
        final = self.genotype()
        for ext in self.extensions:  # e.g. DARTS-ES's earlier architecture, described anew below
            final = ext.final(final)
        path = self._described(final).save(self.attached_run.genotype_path)
        if self.best["genotype"] is not None:
            best = self.genotype(self.best["genotype"], self.best["val_loss"], self.best.get("meta"))
            best.save(self.attached_run.best_genotype_path)
        log.info("search finished after %d steps; genotype written to %s", self.step, path)
        self.strategy.finish(self.attached_run.dir, self.step)

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.best = state["best"]
