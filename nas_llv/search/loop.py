"""The search loop shared by every strategy: data, levels, optimizers, trajectory, checkpoints.

The loop owns a strategy (``nas_llv.search.strategy.Strategy``, from ``STRATEGIES`` by
``search.strategy``), which supplies the levels (name -> Level) and the schedule (the level names
to update, in order, in one iteration). Each scheduled level takes one arch step (hypergradient
on a validation batch), then the method's ``lower_steps`` weight steps (the first on the same
training batch, as in DARTS), and writes one trajectory row. What a search adds to that (the
collapse remedies, the cost term) are search extensions (``search/extensions/``), which the loop
calls through their hooks without knowing any by name. Checkpoints hold everything a resumed run
needs to continue exactly as an uninterrupted one would.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any, Mapping

import torch
from torch import nn

from nas_llv import __version__, distributed
from nas_llv.data import build_loaders
from nas_llv.device import resolve_device
from nas_llv.space.genotype import Genotype
from nas_llv.job import Job
from nas_llv.space.models import build_search_network
from nas_llv.space.models.base import fit_scale
from nas_llv.registry import HYPERGRADS, STRATEGIES
from nas_llv.runs import Run, rng_state, seed_everything, set_rng_state
from nas_llv.space.spec import SpaceSpec, load_space
from nas_llv.speed import apply_speed, channels_last_batch
from nas_llv.space.supernet import arch_parameters, genotype_of, prefer_channels_last, probs_of
from nas_llv.optim import make_optimizer, make_scheduler
from nas_llv.search import extensions
from nas_llv.search.extensions import Extension
from nas_llv.search.level import Level, named
from nas_llv.search.strategy import Losses, Strategy

log = logging.getLogger(__name__)


class Searcher(Job):
    """Runs the recipe's strategy; ``run()`` returns True when the search finished (False: stopped early)."""

    kind = "search"

    def __init__(self, recipe: Any) -> None:
        self.recipe, self.cfg = recipe, recipe.search
        self.attached_run: Run | None = None  # set by attach(): build first, so bad input leaves no folder
        seed_everything(recipe.seed)
        self.device = distributed.local_device(resolve_device(recipe.device))
        # the data first: a missing dataset fails before the supernet (and NNI) is built; each rank
        # of a data-parallel run keeps its slice of every batch
        self.train_data, self.val_data = build_loaders(recipe.data, distributed.shard())
        try:
            self._build()
            self._preflight()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        """The supernet, the strategy and its levels, each level's optimizers and lr schedule."""
        self.spaces = self.load_spaces()
        self.network_cfg = self.recipe.network.builder_config()
        self.space = build_search_network(self.network_cfg, self.spaces, self.recipe.network.merge_edges, self.cfg.relaxation)
        self.net: nn.Module = self.space.net.to(self.device)
        self.method = HYPERGRADS.build(self.cfg.hypergrad)
        self.opts = self.cfg.options  # the strategy's own options dataclass (None: it takes none)
        self.strategy: Strategy = STRATEGIES.get(self.cfg.strategy)(self.cfg, self.opts)
        self.extensions: list[Extension] = extensions.build(self.cfg.extensions)
        self.levels: dict[str, Level] = {}
        for ext in self.extensions:
            ext.setup(self)
        self.levels = self.strategy.build_levels(self.net, self.losses())
        for ext in self.extensions:
            ext.attach(self)
        self._apply_speed()
        self.schedulers = self._attach_optimizers()
        self.steps_per_epoch = self.cfg.steps_per_epoch or self.train_data.epoch_length
        self.step = self.epoch = self.it = 0
        self.best: dict[str, Any] = {"val_loss": math.inf, "genotype": None, "epoch": None}
        self.val_loss: float | None = None  # the latest epoch's validation loss
        self.elapsed = 0.0

    def attach(self, run: Run) -> None:
        """Attach the run folder (new or resumed); each extension may write files of its own now."""
        super().attach(run)
        for ext in self.extensions:
            ext.attach_run(run)

    def extension(self, key: str) -> Extension:
        """The extension of recipe key ``search.<key>``; KeyError where it is off."""
        for ext in self.extensions:
            if ext.key == key:
                return ext
        raise KeyError(f"search extension '{key}' is off in this search")

    def _apply_speed(self) -> None:
        """The recipe's ``speed:`` options (docs/speed.md) on the network and the levels."""
        speed = self.recipe.speed
        amp = apply_speed(self.net, speed, self.device, "search")
        prefer_channels_last(self.net, speed.uses_channels_last("search"))
        for level in self.levels.values():
            level.shortcuts, level.amp = speed.shortcuts, amp

    def _batch(self, stream: Any) -> dict[str, Any]:
        batch = super()._batch(stream)
        return channels_last_batch(batch) if self.recipe.speed.uses_channels_last("search") else batch

    def _attach_optimizers(self) -> dict[str, Any]:
        """Each level's weight optimizer (``search.weights``) and upper optimizer (the strategy's);
        returns each level's lr schedules (weights, and upper variables where the strategy has one,
        ``Strategy.upper_scheduler``), which span the epochs that level is updated in."""
        schedulers = {}
        for name, level in self.levels.items():
            w_opt = make_optimizer(self.cfg.weights, list(level.lower.values()))
            a_opt = self.strategy.upper_optimizer(name, level) if level.upper else None
            level.attach(w_opt, a_opt, self.cfg.weights.grad_clip)
            epochs = len(self.active_epochs(name))
            schedulers[name] = make_scheduler(self.cfg.weights, w_opt, epochs)
            upper = (self.strategy.upper_scheduler(name, a_opt, len(self.active_epochs(name, arch=True)))
                     if a_opt is not None else None)
            if upper is not None:
                schedulers[f"{name}.upper"] = upper
        return schedulers

    @torch.no_grad()
    def _preflight(self) -> None:
        """Every level's objectives on one training and one validation batch (neither consumed): a
        loss that needs ground truth on unpaired data, or data the network cannot take, fails here,
        before the run folder exists."""
        states = self.train_data.state_dict(), self.val_data.state_dict()
        train_b, val_b = self._batch(self.train_data), self._batch(self.val_data)
        self.train_data.load_state_dict(states[0])
        self.val_data.load_state_dict(states[1])
        for level in self.levels.values():
            level.objective(train_b, True)({})
            level.objective(val_b, False)({})

    def close(self) -> None:
        """Release the data streams' loader threads (``data.num_workers > 0``)."""
        self.train_data.close()
        self.val_data.close()

    # -- building ----------------------------------------------------------------------------
    def load_spaces(self) -> dict[str, SpaceSpec]:
        """The recipe's spaces, resolved; SR models take their scale from ``data.scale``."""
        return fit_scale({k: load_space(v) for k, v in self.recipe.network.spaces.items()}, self.recipe.data.scale)

    def losses(self) -> Losses:
        """The recipe's losses, built on this device when the strategy asks for them."""
        return Losses(self.recipe.losses, self.device, self.strategy.needed_losses(self.net))

    def active_epochs(self, level: str, arch: bool = False) -> list[int]:
        """The epochs in which ``level`` is updated (all of them, unless the strategy has phases);
        ``arch``: in which its upper variables are (after ``search.arch_warmup``)."""
        first = self.cfg.arch_warmup if arch else 0
        return [e for e in range(first, self.cfg.epochs) if level in self.strategy.schedule(e)]

    # -- the loop ----------------------------------------------------------------------------
    def done(self) -> bool:
        """Every epoch run, or an extension stopped the search early (DARTS-ES)."""
        return self.epoch >= self.cfg.epochs or any(ext.should_stop for ext in self.extensions)

    def progress(self) -> tuple[int, int]:
        """(steps done, steps in all): one step per level update, as the log and the trajectory count."""
        return self.step, self.total_steps

    @property
    def total_steps(self) -> int:
        return sum(self.steps_per_epoch * len(self.strategy.schedule(e)) for e in range(self.cfg.epochs))

    def advance(self, start: float) -> None:
        """One iteration of the schedule; the epoch's end (validation, lr step) after its last."""
        if self.it == 0:
            self.strategy.start_epoch(self.epoch)
        self._iteration(start)
        self.it += 1
        if self.it >= self.steps_per_epoch:
            self._end_epoch(start)

    def checkpoint_due(self) -> bool:
        return self.step % self.cfg.checkpoint_every == 0

    def _iteration(self, start: float) -> None:
        for ext in self.extensions:
            ext.before_iteration(self.epoch)
        for name in self.strategy.schedule(self.epoch):
            level = self.levels[name]
            level.arch_held = self.epoch < self.cfg.arch_warmup
            train_loss, terms, val_b = level.iterate(
                self.method, lambda: self._batch(self.train_data), lambda: self._batch(self.val_data))
            self.step += 1
            self.check_finite(name, {"training loss": {"total": train_loss, **terms},
                                     "upper variable (α or ς)": level.upper, "weight": level.lower})
            row = {"step": self.step, "epoch": self.epoch + 1, "module": name, "phase": "search",
                   "train_loss": train_loss, "val_loss": self._logged_val_loss(level, val_b), "lr": level.lr,
                   "seconds": round(time.perf_counter() - start, 4)}
            row.update({f"loss/{k}": v for k, v in terms.items()})
            row.update(self.strategy.extra_columns())
            row.update({f"hypergrad/{k}": v for k, v in self.method.info.items()})
            row.update({f"penalty/{k}": v for k, v in level.penalty_values.items()})
            for ext in self.extensions:
                row.update(ext.columns(name, level, val_b))
            row.update(self._prob_columns())
            self.attached_run.trajectory_writer.append(row)

    def _logged_val_loss(self, level: Level, val_b: Any) -> float:
        """The trajectory's ``val_loss``: with ``speed.shortcuts`` the upper loss the hypergradient
        evaluated first on ``val_b`` (``Level.arch_step``), else one more forward after the weight step."""
        if level.shortcuts and level.upper_loss is not None:
            return distributed.mean_floats({"val": float(level.upper_loss)})["val"]
        return level.val_loss(val_b)

    def _prob_columns(self) -> dict[str, float]:
        return {f"prob/{label}/{op}": p for label, ops in probs_of(self.net).items() for op, p in ops.items()}

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

    def refine(self, choices: dict[str, str], weights: Mapping[str, Mapping[str, float]]
               ) -> tuple[dict[str, str], dict[str, Any]]:
        """``choices`` (argmax of α whose mixing weights are ``weights``, label -> {op: weight})
        through each extension's ``derive``; returns them and the meta entries the extensions add."""
        meta: dict[str, Any] = {}
        for ext in self.extensions:
            choices, extra = ext.derive(choices, weights)
            meta.update(extra)
        return choices, meta

    def genotype(self, choices: dict[str, str] | None = None, val_loss: float | None = None,
                 extra: dict[str, Any] | None = None) -> Genotype:
        """The current architecture (``derived``), or ``choices`` with their meta ``extra``; its meta
        records ``val_loss``, the validation loss it scored (default: the latest epoch's), where there is one."""
        meta = {"run": self.attached_run.dir.name, "strategy": self.cfg.strategy, "epochs": self.epoch, "step": self.step}
        val_loss = self.val_loss if choices is None else val_loss
        if choices is None:
            choices, extra = self.derived()
        if val_loss is not None:
            meta["val_loss"] = val_loss
        return self._described(Genotype(self.network_cfg, self.spaces, choices, {**meta, **(extra or {})}))

    def _described(self, genotype: Genotype) -> Genotype:
        """``genotype`` with the meta entries each extension's ``describe`` adds (its cost)."""
        for ext in self.extensions:
            genotype = ext.describe(genotype)
        return genotype

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

    def state_dict(self) -> dict[str, Any]:
        """The loop's entries, each extension's (under its ``state_key``) and the strategy's (e.g.
        learned loss weights), side by side."""
        state = self._state()
        parts = [(f"search extension '{ext.key}'", {ext.state_key: ext.state_dict()})
                 for ext in self.extensions if ext.state_key is not None]
        for who, extra in [*parts, (f"strategy '{self.cfg.strategy}'", self.strategy.state_dict())]:
            clash = state.keys() & extra.keys()
            if clash:
                raise ValueError(f"{who}: checkpoint keys {sorted(clash)} are taken by the loop or an extension")
            state.update(extra)
        return state

    def _state(self) -> dict[str, Any]:
        return {
            "nas_llv": __version__, "kind": "search", "config": self.recipe.to_dict(),
            "network": self.net.state_dict(),  # weights and α
            "optimizers": {n: {"weights": lv.weight_opt.state_dict(),
                               "arch": lv.arch_opt.state_dict() if lv.arch_opt else None} for n, lv in self.levels.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "data": {"train": self.train_data.state_dict(), "val": self.val_data.state_dict()},
            "progress": {"step": self.step, "epoch": self.epoch, "it": self.it, "elapsed": self.elapsed,
                         "val_loss": self.val_loss},
            "best": self.best, "rng": rng_state(), "world_size": distributed.world_size(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state)
        self.net.load_state_dict(state["network"])
        for name, level in self.levels.items():
            level.weight_opt.load_state_dict(state["optimizers"][name]["weights"])
            if level.arch_opt is not None:
                level.arch_opt.load_state_dict(state["optimizers"][name]["arch"])
        for name, sched in self.schedulers.items():  # an upper schedule is absent from older checkpoints
            if name in state["schedulers"]:
                sched.load_state_dict(state["schedulers"][name])
        self.train_data.load_state_dict(state["data"]["train"])
        self.val_data.load_state_dict(state["data"]["val"])
        p = state["progress"]
        self.step, self.epoch, self.it, self.elapsed = p["step"], p["epoch"], p["it"], p["elapsed"]
        self.val_loss = p.get("val_loss")  # older checkpoints lack it
        self.best = state["best"]
        for ext in self.extensions:
            if ext.state_key is not None:
                ext.load_state_dict(state.get(ext.state_key))
        set_rng_state(state["rng"])
        self.attached_run.trajectory_writer.truncate_after(self.step)
