"""What a search strategy supplies to the loop: its levels, its schedule, and optional hooks.

The loop (``nas_llv.search.loop.Searcher``) owns one strategy, built from ``STRATEGIES`` by
``search.strategy`` with the shared search config (``cfg``: epochs, optimizers, hypergradient)
and the strategy's own options (``opts``: the dataclass it was registered with). A new strategy
is one module, e.g.::

    @dataclass(frozen=True)
    class SceneOnlyConfig:
        scene_steps: int = 1          # scene updates per iteration

    @STRATEGIES.register("scene_only", config=SceneOnlyConfig)
    class SceneOnly(Strategy):
        needs = ("scene",)

        def build_levels(self, net, losses):
            return {"scene": SceneLevel(net, losses("scene"), None, 0.0)}

        def schedule(self, epoch):
            return ["scene"] * self.opts.scene_steps

Everything else (data, optimizers, schedulers, trajectory rows, checkpoints, divergence checks,
genotypes) is the loop's.

A strategy declares its ``kind``, which picks the loop that runs it (``SEARCH_LOOPS``,
``search/loops/``): ``one_shot`` (the default) trains one supernet and learns its upper variables
(α, ς) with the levels' arch steps; ``multi_trial`` trains and scores candidates one after another
and never steps α (``search/strategies/random.py`` says which hooks that loop calls). The recipe's
checks read the kind (and ``warms_up``) through ``STRATEGIES``, never a strategy's name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.optim import make_optimizer, make_scheduler
from nas_llv.search.level import Batch, Level, Scalar


class Losses:
    """The recipe's ``losses`` section, each entry built on ``device`` when a strategy asks for it.

    ``losses("scene")`` builds a new module every call; a missing key fails naming the losses
    this strategy needs (``needed``).
    """

    def __init__(self, specs: Mapping[str, Mapping[str, Any]], device: torch.device, needed: Sequence[str]) -> None:
        self.specs, self.device, self.needed = specs, device, list(needed)

    def __contains__(self, key: object) -> bool:
        return key in self.specs

    def __call__(self, key: str) -> nn.Module:
        if key not in self.specs:
            wanted = f"; this strategy needs losses: {', '.join(self.needed)}" if self.needed else ""
            raise ConfigError(f"recipe: losses.{key} is missing{wanted}")
        from nas_llv.losses import build_loss  # on use: listing the strategies' options needs no losses

        return build_loss(self.specs[key]).to(self.device)


def weight_optimizer(cfg: Any, level: Level) -> torch.optim.Optimizer:
    """A new optimizer (``search.weights`` of the shared search config ``cfg``) of ``level``'s weights ω."""
    return make_optimizer(cfg.weights, list(level.lower.values()))


class Strategy:
    """A search strategy: ``build_levels`` and ``schedule`` are required, the rest have defaults.

    ``cfg`` is the shared search config, ``opts`` this strategy's options (an instance of the
    dataclass it was registered with; None when it was registered without one). A multi-trial
    strategy needs no ``schedule`` (every level, each iteration) and no upper optimizer; it gives
    its candidates (``samples``), makes one current in ``start_epoch`` and scores it (``score``,
    kept in ``val_losses``): ``search/strategies/random.py``.
    """

    kind: ClassVar[str] = "one_shot"  # the loop that runs it: one_shot or multi_trial (``SEARCH_LOOPS``)
    warms_up: ClassVar[bool] = True  # takes ``search.arch_warmup``: its levels step α in each iteration
    needs: tuple[str, ...] = ()  # the recipe losses this strategy uses, named when one is missing
    cost_table: Any = None  # the supernet's ``space.cost.CostTable`` when ``search.cost`` is on (set by that extension before build_levels)

    def __init__(self, cfg: Any, opts: Any) -> None:
        self.cfg, self.opts = cfg, opts

    # -- required ----------------------------------------------------------------------------
    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        """Level name -> Level of the network ``net``; called once, before training starts."""
        raise NotImplementedError

    def schedule(self, epoch: int) -> list[str]:
        """The level names updated, in order, in one iteration of ``epoch`` (0-based)."""
        raise NotImplementedError

    # -- optional ----------------------------------------------------------------------------
    def needed_losses(self, net: nn.Module) -> list[str]:
        """The recipe losses this strategy uses on ``net`` (for the missing-loss message)."""
        return list(self.needs)

    def upper_optimizer(self, name: str, level: Level) -> torch.optim.Optimizer:
        """The optimizer of level ``name``'s upper variables (α by default: ``search.arch``)."""
        return make_optimizer(self.cfg.arch, list(level.upper.values()))

    def upper_scheduler(self, name: str, opt: torch.optim.Optimizer, epochs: int) -> Any:
        """The lr schedule of level ``name``'s upper optimizer ``opt`` over its ``epochs`` (stepped
        per epoch, as the weights'): ``search.arch.schedule``; None where there is none."""
        return make_scheduler(self.cfg.arch, opt, epochs)

    def start_epoch(self, epoch: int) -> None:
        """Called before the first iteration of ``epoch`` (0-based), also when a run resumes at
        that epoch's start; a run resumed inside an epoch continues it without a call."""

    def extra_columns(self) -> dict[str, Scalar]:
        """Strategy-specific trajectory columns of each row (e.g. learned loss hyper-variables)."""
        return {}

    def val_loss(self, levels: Mapping[str, Level], batch: Batch) -> float:
        """The validation objective on one batch (best genotype): every level's upper loss, summed."""
        return sum(level.val_loss(batch) for level in levels.values())

    def finish(self, folder: Path, step: int) -> None:
        """Write the strategy's own result files into the run ``folder`` (after the genotypes)."""

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries beside the loop's (e.g. learned loss hyper-variables); keys must not clash."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from a whole checkpoint (the loop's entries and this strategy's)."""
