"""RobustDARTS (Zela et al., ICLR 2020, "Understanding and Robustifying Differentiable
Architecture Search"): the dominant eigenvalue λ of the Hessian ∇²_α L_val of a level's
validation loss w.r.t. its α, at the current ω, and DARTS-ES, the early stop on its rise.

λ comes from power iteration with Hessian-vector products (double backward through the level's
validation objective, α passed as overrides), every ``every`` arch steps of a level, on the
step's validation batch; it is logged as the trajectory column ``hessian/eigenvalue``. At each
epoch's end the epoch's mean λ per level joins that level's series; DARTS-ES stops when
mean(series[-2k:-k]) / mean(series[-k:]) < ratio and the search returns the architecture of k
epochs earlier (the tracker keeps the last k + 1 epochs' α, and its checkpoint entry all of it).
The extension ``search.hessian`` is the loop's side of it: a ``HessianTracker`` behind the hooks.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from nas_llv.config import check_range
from nas_llv.search.extensions.base import Extension, Search, register
from nas_llv.search.hypergrad.base import dot, grads, leaves, vjp
from nas_llv.search.level import Batch, Level, Scalar
from nas_llv.space.genotype import Genotype
from nas_llv.space.supernet import arch_modules, genotype_of, probs_of

log = logging.getLogger(__name__)

COLUMN = "hessian/eigenvalue"


@dataclass(frozen=True)
class EarlyStopConfig:
    """DARTS-ES (Zela et al. 2020, Sec. 4.3): stop when mean(λ over the ``window`` epochs before the
    last ``window``) / mean(λ over the last ``window``) < ``ratio``, and keep the architecture of
    ``window`` epochs earlier."""

    window: int = 5          # k: epochs in each mean (paper: 5)
    ratio: float = 0.75      # stop below this ratio of the earlier mean to the later (paper: 0.75)

    def validate(self) -> None:
        check_range("window", self.window, 1)
        check_range("ratio", self.ratio, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class HessianConfig:
    """RobustDARTS (Zela et al. 2020): the dominant eigenvalue of ∇²_α L_val by power iteration."""

    every: int = 4           # arch steps of a level between two eigenvalues
    iters: int = 20          # power-iteration steps at most, one Hessian-vector product each
    tol: float = 1e-3        # stop earlier when the estimate moves by less than tol * |λ|
    early_stop: EarlyStopConfig | None = None

    def validate(self) -> None:
        check_range("every", self.every, 1)
        check_range("iters", self.iters, 1)
        check_range("tol", self.tol, 0.0)


def dominant_eigenvalue(loss: Callable[[Mapping[str, Tensor]], Tensor], at: Mapping[str, Tensor],
                        iters: int, tol: float, generator: torch.Generator) -> float:
    """The eigenvalue of largest magnitude of the Hessian of ``loss`` at ``at`` (name -> tensor),
    by at most ``iters`` power-iteration steps from a random unit vector (``generator``); stops
    when the Rayleigh quotient vᵀHv moves by less than ``tol`` · |λ|. 0 where the Hessian is 0."""
    x = leaves(at)
    g = grads(loss(x), x, create_graph=True)
    v = _unit({k: torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for k, t in x.items()})
    value = 0.0
    for i in range(iters):
        hv = vjp(g, x, v)
        new = float(dot(v, hv))
        v = _unit(hv)
        if v is None or (i > 0 and abs(new - value) <= tol * abs(new)):
            return new
        value = new
    return value


def _unit(v: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
    """``v`` / ‖v‖ over all names; None for the zero vector."""
    norm = float(dot(v, v)) ** 0.5
    return {k: t / norm for k, t in v.items()} if norm > 0 else None


def level_eigenvalue(level: Level, batch: Batch, cfg: HessianConfig, generator: torch.Generator) -> float | None:
    """λ of ∇²_α of ``level``'s validation objective on ``batch`` (None: the level has no α)."""
    alphas = level.arch_variables()
    if not alphas:
        return None
    objective = level.objective(batch, False)

    def loss(ov: Mapping[str, Tensor]) -> Tensor:
        with level.amp():
            return objective(ov)[0]

    return dominant_eigenvalue(loss, alphas, cfg.iters, cfg.tol, generator)


def rise_ratio(series: list[float], window: int) -> float | None:
    """mean(series[-2·window:-window]) / mean(series[-window:]) (DARTS-ES's λ̄_{i-k} / λ̄_i); None
    with fewer than 2·window values or a later mean <= 0 (no rise to measure)."""
    if len(series) < 2 * window:
        return None
    earlier, later = series[-2 * window:-window], series[-window:]
    later_mean = sum(later) / window
    return sum(earlier) / window / later_mean if later_mean > 0 else None


def should_stop(series: list[float], cfg: EarlyStopConfig) -> bool:
    """DARTS-ES: the eigenvalue rose, ``rise_ratio`` < ``cfg.ratio``."""
    ratio = rise_ratio(series, cfg.window)
    return ratio is not None and ratio < cfg.ratio


def arch_snapshot(net: nn.Module) -> dict[str, Tensor]:
    """label -> a copy of its α, for every label of ``net``."""
    return {label: a.detach().cpu().clone() for arch in arch_modules(net) for label, a in arch.items()}


Cap = Callable[[dict[str, str], dict[str, dict[str, float]]], tuple[dict[str, str], dict[str, Any]]]


class HessianTracker:
    """The loop's side of RobustDARTS: λ per level every ``cfg.every`` arch steps, the per-epoch
    series, DARTS-ES and the α it returns to. With ``cfg`` None every method does nothing."""

    def __init__(self, cfg: HessianConfig | None, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        self.steps: dict[str, int] = {}               # level -> arch steps taken
        self.running: dict[str, list[float]] = {}     # level -> eigenvalues of the running epoch
        self.series: dict[str, list[float]] = {}      # level -> mean eigenvalue of each epoch that had one
        self.snapshots: list[dict[str, Tensor]] = []  # α at the last window + 1 epoch ends (DARTS-ES)
        self.stopped: dict[str, Any] | None = None    # where and why DARTS-ES stopped the search

    def after_step(self, name: str, level: Level, batch: Batch) -> dict[str, float]:
        """The trajectory column of level ``name``'s step just taken: λ on its validation ``batch``
        at every ``every``-th arch step of the level, else nothing."""
        if self.cfg is None:
            return {}
        n = self.steps[name] = self.steps.get(name, 0) + 1
        if n % self.cfg.every:
            return {}
        # a generator of its own: tracking λ leaves the search's random stream as it was
        value = level_eigenvalue(level, batch, self.cfg, torch.Generator().manual_seed(self.seed * 1_000_003 + n))
        if value is None:
            return {}
        self.running.setdefault(name, []).append(value)
        return {COLUMN: value}

    def end_epoch(self, epoch: int, net: nn.Module) -> None:
        """After 0-based ``epoch``: each level's mean λ of the epoch joins its series, and with
        ``early_stop`` the α are kept and DARTS-ES may set ``stopped``."""
        running, self.running = self.running, {}
        early = self.cfg.early_stop if self.cfg is not None else None
        if early is None:
            return
        for name, values in running.items():
            self.series.setdefault(name, []).append(sum(values) / len(values))
        self.snapshots = [*self.snapshots, arch_snapshot(net)][-(early.window + 1):]
        for name in running:
            if should_stop(self.series[name], early) and len(self.snapshots) > early.window:
                self._stop(name, epoch + 1, early)
                break

    def _stop(self, name: str, epoch: int, early: EarlyStopConfig) -> None:
        ratio = rise_ratio(self.series[name], early.window)
        self.stopped = {"epoch": epoch, "architecture_epoch": epoch - early.window, "level": name,
                        "reason": f"DARTS-ES: mean Hessian eigenvalue of the {early.window} epochs before the last "
                                  f"{early.window} / of the last {early.window} = {ratio:.4f} < {early.ratio}"}
        log.info("early stop after epoch %d, level %s: %s; genotype.yaml takes the architecture of epoch %d",
                 epoch, name, self.stopped["reason"], epoch - early.window)

    def final(self, genotype: Genotype, net: nn.Module, cap: Cap | None = None) -> Genotype:
        """``genotype``, or after an early stop the architecture of ``window`` epochs before it,
        its meta saying so (without the latest epoch's val_loss, which that architecture did not
        score, nor the record of a cap applied to the latest α). ``cap``: (choices, label -> {op:
        weight}) -> (choices, meta), the skip cap the search applies to its genotypes (``max_skip``)."""
        if self.stopped is None:
            return genotype
        meta = {k: v for k, v in genotype.meta.items() if k not in ("val_loss", "max_skip")}
        choices, extra = genotype_of(net, self.snapshots[0]), {}
        if cap is not None:
            choices, extra = cap(choices, probs_of(net, self.snapshots[0]))
        return dataclasses.replace(genotype, choices=choices, meta={**meta, **extra, "early_stopped": self.stopped})

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "running": self.running, "series": self.series,
                "snapshots": self.snapshots, "stopped": self.stopped}

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        """Restore ``state_dict()``'s entries (None: a checkpoint without them, nothing to restore)."""
        for key, value in (state or {}).items():
            setattr(self, key, value)


@register("hessian", HessianConfig)
class Hessian(Extension):
    """RobustDARTS' Hessian eigenvalue in the trajectory, and DARTS-ES' early stop (docs/remedies.md)."""

    order = 10
    state_key = "hessian"

    def setup(self, search: Search) -> None:
        self.net, self.tracker = search.net, HessianTracker(self.options, search.recipe.seed)
        self.refine = search.refine  # the skip cap (and any other derive hook) of the earlier α

    def columns(self, name: str, level: Level, batch: Batch) -> dict[str, Scalar]:
        return self.tracker.after_step(name, level, batch)

    def end_epoch(self, epoch: int) -> None:
        self.tracker.end_epoch(epoch, self.net)

    @property
    def should_stop(self) -> bool:
        return self.tracker.stopped is not None

    def final(self, genotype: Genotype) -> Genotype:
        return self.tracker.final(genotype, self.net, self.refine)

    def state_dict(self) -> dict[str, Any]:
        return self.tracker.state_dict()

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        self.tracker.load_state_dict(state)
