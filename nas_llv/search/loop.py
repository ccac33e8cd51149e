"""What every search shares: data, the supernet, the strategy and its levels, the search extensions,
trajectory rows, checkpoints and the genotype files.

``Searcher(recipe)`` builds the search of the recipe's strategy: the loop registered in
``SEARCH_LOOPS`` for the strategy's ``kind`` (``search/loops/``), a subclass of ``Searcher``.
``one_shot`` (``loops/one_shot.py``) learns the upper variables (α, ς) of one supernet with arch
steps; ``multi_trial`` (``loops/multi_trial.py``) trains and scores candidates one after another.
Both write one trajectory row per level update, checkpoint everything a resumed run needs to
continue exactly as an uninterrupted one would, and call the search extensions
(``search/extensions/``) through their hooks without knowing any by name.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from nas_llv import __version__, distributed
from nas_llv.data import build_loaders
from nas_llv.device import resolve_device
from nas_llv.space.genotype import Genotype
from nas_llv.job import Job
from nas_llv.space.models import build_search_network
from nas_llv.space.models.base import fit_scale
from nas_llv.registry import SEARCH_LOOPS, STRATEGIES
from nas_llv.runs import Run, rng_state, seed_everything, set_rng_state
from nas_llv.space.spec import SpaceSpec, load_space
from nas_llv.speed import apply_speed, channels_last_batch, foreach_steps, new_graph_step
from nas_llv.space.supernet import prefer_channels_last, prob_tensors
from nas_llv.search import extensions
from nas_llv.search.extensions import Extension
from nas_llv.search.level import Batch, Level, Scalar
from nas_llv.rows import PendingRows
from nas_llv.search.strategy import Losses, Strategy, weight_optimizer


class Searcher(Job):
    """The search of ``recipe``; ``run()`` returns True when it finished (False: stopped early).

    Subclasses (one per strategy kind) implement ``_update`` (one level's update in an
    iteration), ``_end_epoch`` and ``finish``, and may extend ``_build``, ``_attach_optimizers``,
    ``_upper_columns``, ``_state`` and ``load_state_dict``."""

    kind = "search"

    def __new__(cls, recipe: Any) -> Searcher:
        if cls is Searcher:  # the loop of the strategy's kind
            cls = SEARCH_LOOPS.get(STRATEGIES.get(recipe.search.strategy).kind)
        return super().__new__(cls)

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
        foreach_steps(o for level in self.levels.values() for o in (level.weight_opt, level.arch_opt))
        self.steps_per_epoch = self.cfg.steps_per_epoch or self.train_data.epoch_length
        self.step = self.epoch = self.it = 0
        self.val_loss: float | None = None  # the latest epoch's validation loss
        self.elapsed = 0.0
        self.rows = PendingRows(self.recipe.speed.sync_every)  # read to the host every sync_every steps

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
            level.shortcuts, level.amp, level.explicit_grads = speed.shortcuts, amp, speed.compiles(self.device)

    def _batch(self, stream: Any) -> dict[str, Any]:
        batch = super()._batch(stream)
        return channels_last_batch(batch) if self.recipe.speed.uses_channels_last("search") else batch

    def _attach_optimizers(self) -> dict[str, Any]:
        """Each level's weight optimizer (``search.weights``); returns the lr schedules (none here)."""
        for level in self.levels.values():
            level.attach(weight_optimizer(self.cfg, level), None, self.cfg.weights.grad_clip)
        return {}

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

    # -- the loop ----------------------------------------------------------------------------
    def schedule(self, epoch: int) -> list[str]:
        """The level names updated, in order, in one iteration of ``epoch`` (0-based): every level."""
        return list(self.levels)

    def done(self) -> bool:
        """Every epoch run, or an extension stopped the search early (DARTS-ES)."""
        return self.epoch >= self.cfg.epochs or any(ext.should_stop for ext in self.extensions)

    def progress(self) -> tuple[int, int]:
        """(steps done, steps in all): one step per level update, as the log and the trajectory count."""
        return self.step, self.total_steps

    @property
    def total_steps(self) -> int:
        return sum(self.steps_per_epoch * len(self.schedule(e)) for e in range(self.cfg.epochs))

    def advance(self, start: float) -> None:
        """One iteration of the schedule; the epoch's end (validation, lr step) after its last."""
        if self.it == 0:
            self.strategy.start_epoch(self.epoch)
        self._iteration(start)
        self.it += 1
        if self.it >= self.steps_per_epoch:
            self.flush_rows()
            self._end_epoch(start)

    def flush_rows(self) -> None:
        """Write the trajectory rows kept on the device (``speed.sync_every``), after one host read;
        ``Diverged`` for the first of their steps with a non-finite loss, α, ς or weight."""
        self.rows.flush(self.attached_run.trajectory_writer.append, self.diverged)

    def checkpoint_due(self) -> bool:
        return self.step % self.cfg.checkpoint_every == 0

    def _iteration(self, start: float) -> None:
        new_graph_step(self.recipe.speed.graphs(self.device))
        for ext in self.extensions:
            ext.before_iteration(self.epoch)
        for name in self.schedule(self.epoch):
            level = self.levels[name]
            train_loss, terms, val_b = self._update(level)
            self.step += 1
            row = {"step": self.step, "epoch": self.epoch + 1, "module": name, "phase": "search",
                   "train_loss": train_loss, "val_loss": self._logged_val_loss(level, val_b), "lr": level.lr,
                   "seconds": round(time.perf_counter() - start, 4)}
            row.update({f"loss/{k}": v for k, v in terms.items()})
            row.update(self.strategy.extra_columns())
            row.update(self._upper_columns(level))
            for ext in self.extensions:
                row.update(ext.columns(name, level, val_b))
            row.update(self._prob_columns())
            self.rows.add(self.step, name, row, {"training loss": {"total": train_loss, **terms},
                                                 "upper variable (α or ς)": level.upper, "weight": level.lower})
            if self.rows.due():
                self.flush_rows()

    def _update(self, level: Level) -> tuple[Scalar, dict[str, Scalar], Batch]:
        """One update of ``level`` in an iteration: (training loss, its terms, the validation batch
        its row's ``val_loss`` is measured on); the numbers may be 0-dim tensors on the device."""
        raise NotImplementedError

    def _upper_columns(self, level: Level) -> dict[str, Scalar]:
        """Trajectory columns of ``level``'s upper step just taken (none here)."""
        return {}

    def _logged_val_loss(self, level: Level, val_b: Any) -> torch.Tensor:
        """The trajectory's ``val_loss`` (on the device): with ``speed.shortcuts`` the upper loss the
        hypergradient evaluated first on ``val_b`` (``Level.arch_step``), else one more forward after
        the weight step."""
        if level.shortcuts and level.upper_loss is not None:
            return distributed.all_reduce_mean({"val": level.upper_loss})["val"]
        return level.val_loss_tensor(val_b)

    def _prob_columns(self) -> dict[str, torch.Tensor]:
        return {f"prob/{label}/{op}": p for label, ops in prob_tensors(self.net).items() for op, p in ops.items()}

    def _end_epoch(self, start: float) -> None:
        raise NotImplementedError

    # -- results and checkpoints ---------------------------------------------------------------
    def genotype(self, choices: dict[str, str], val_loss: float | None = None,
                 extra: dict[str, Any] | None = None) -> Genotype:
        """``choices`` with their meta ``extra``; its meta records ``val_loss``, the validation loss
        it scored, where there is one, and what the extensions' ``describe`` add."""
        meta = {"run": self.attached_run.dir.name, "strategy": self.cfg.strategy, "epochs": self.epoch, "step": self.step}
        if val_loss is not None:
            meta["val_loss"] = val_loss
        return self._described(Genotype(self.network_cfg, self.spaces, choices, {**meta, **(extra or {})}))

    def _described(self, genotype: Genotype) -> Genotype:
        """``genotype`` with the meta entries each extension's ``describe`` adds (its cost)."""
        for ext in self.extensions:
            genotype = ext.describe(genotype)
        return genotype

    def state_dict(self) -> dict[str, Any]:
        """The loop's entries, each extension's (under its ``state_key``) and the strategy's (e.g.
        learned loss hyper-variables), side by side."""
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
            "rng": rng_state(), "world_size": distributed.world_size(),
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
        for ext in self.extensions:
            if ext.state_key is not None:
                ext.load_state_dict(state.get(ext.state_key))
        set_rng_state(state["rng"])
        self.attached_run.trajectory_writer.truncate_after(self.step)
