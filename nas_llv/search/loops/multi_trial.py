"""The multi-trial loop: candidates trained and scored one after another, never an arch step.

Epoch e is candidate e of the strategy (``Strategy.kind`` multi_trial, e.g. ``random``), which
draws the candidates (``samples``) and makes each one current at its epoch's start
(``start_epoch``: the network at its initial weights with α one-hot on the candidate, fresh
weight optimizers). Every candidate gets the same passes: ``search.steps_per_epoch`` iterations,
each one weight step per level (one trajectory row each), then its score on the validation
batches the strategy keeps (``score``: the same batches for every candidate). The end of the
search writes ``candidates.csv`` and, once, the best candidate as ``genotype.yaml`` (and
``genotype_best.yaml``, the same genotype). No lr schedule acts: a candidate trains for one epoch
at ``search.weights.lr``.
"""
from __future__ import annotations

import csv
import io
import logging
import math
from typing import Any, Mapping

from nas_llv.atomic import write_text
from nas_llv.registry import SEARCH_LOOPS
from nas_llv.search.level import Batch, Level, Scalar
from nas_llv.search.loop import Searcher

log = logging.getLogger(__name__)


@SEARCH_LOOPS.register("multi_trial")
class MultiTrial(Searcher):
    """Runs a multi-trial strategy: ``search.epochs`` candidates, each trained and scored alike."""

    def _update(self, level: Level) -> tuple[Scalar, dict[str, Scalar], Batch]:
        loss, terms = level.weight_step(self._batch(self.train_data))
        return loss, terms, self._batch(self.val_data)

    @property
    def best(self) -> dict[str, Any]:
        """The candidate (0-based) with the lowest validation loss so far (the first of equal ones)."""
        scores = self.strategy.val_losses
        if not scores:
            return {"candidate": None, "val_loss": math.inf}
        best = min(scores, key=lambda c: (scores[c], c))
        return {"candidate": best, "val_loss": scores[best]}

    def _end_epoch(self, start: float) -> None:
        val = self.strategy.score(self.levels, lambda: self._batch(self.val_data), self.cfg.val_batches, self.device)
        self.check_finite("all", {"validation loss": {"mean": val}})
        self.val_loss = val
        log.info("candidate %d/%d: validation loss %.5f (best %.5f, candidate %d)", self.epoch + 1,
                 self.cfg.epochs, val, self.best["val_loss"], self.best["candidate"] + 1)
        for ext in self.extensions:
            ext.end_epoch(self.epoch)
        self.epoch, self.it = self.epoch + 1, 0
        self.save(start)

    def finish(self, start: float | None = None) -> None:
        """``candidates.csv``, then the best candidate as ``genotype.yaml`` and ``genotype_best.yaml``."""
        if not self.attached_run.writes:  # another rank than 0 of a data-parallel run
            return
        run, samples, scores = self.attached_run, self.strategy.samples, self.strategy.val_losses
        write_text(run.candidates_path, candidates_csv(samples, scores, self.strategy.cost_table))
        best = self.best["candidate"]
        genotype = self.genotype(dict(samples[best]), scores[best], {"candidate": best + 1, "candidates": len(scores)})
        path = genotype.save(run.genotype_path)
        genotype.save(run.best_genotype_path)
        log.info("search finished after %d steps; genotype (candidate %d of %d) written to %s",
                 self.step, best + 1, len(scores), path)
        self.strategy.finish(run.dir, self.step)


def candidates_csv(samples: list[dict[str, str]], scores: Mapping[int, float], table: Any = None) -> str:
    """One row per scored candidate: ``candidate`` (1-based), ``val_loss``, its ``cost`` under the
    cost ``table`` (``space.cost.CostTable``; no column without one), one column per label."""
    labels = list(samples[0])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["candidate", "val_loss", *(["cost"] if table is not None else []), *labels])
    for c, loss in scores.items():
        cost = [repr(table.of(samples[c]))] if table is not None else []
        writer.writerow([c + 1, repr(loss), *cost, *(samples[c][label] for label in labels)])
    return out.getvalue()
