"""Strategy ``hyper``: TriCo Alg. 1 (phased gradient-response), with α searched alongside ς.

Data: the training split is D_ll (lower level), the validation split D_ul (upper level); TriCo
splits 1:5, so the recipes set ``data.val_ratio: 0.1667``.

- S1, module ``hyper`` (the first ``epochs - s2_epochs`` epochs): lower ω = every network weight,
  Φ^ll = Σ_u form(L_u, ς_u) on D_ll (``losses.lower`` with ``learned:``); upper = ς and, when the
  space has choices, α, as ONE upper set of the chosen hypergradient method (the same Φ^ul
  judges both; each keeps its own optimizer: ``search.hyper`` for ς, ``search.arch`` for α).
- S2, module ``illum`` (the last ``s2_epochs`` epochs): ς and α frozen; upper ω_i = the
  illumination network (``search.illum_modules``, default: the network's ``illumination_modules``),
  lower ω_s = the other weights, Φ^ll with the frozen ς on D_ll.

Φ^ul (``search.upper_objective``): ``fixed`` (default) is ``losses.upper``, an unlearned loss
(L1 to the ground truth in the recipes), so ς gets only the response term (TriCo's A_ω):
ς_u moves by how well ∇_ω L_u aligns with ∇_ω Φ^ul. ``total`` is the paper's literal
Φ^ul = L_total(ς, ω; D_ul), whose direct ς gradient is uncertainty weighting.

Every iteration: one upper step (hypergradient on a D_ll and a D_ul batch), then
``method.lower_steps`` lower steps (the first on the same D_ll batch, as DARTS), then one step of
each adversarial term's discriminator (CollaBA Eq. 10, ``losses/adversarial.py``), one row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError, check_range
from nas_llv.atomic import write_yaml
from nas_llv.optim import OptimConfig, SchedulerGroup, make_optimizer, make_scheduler
from nas_llv.registry import STRATEGIES
from nas_llv.search.level import Batch, Level, LossClosure, Scalar, arch_parameters, call, named, weight_parameters
from nas_llv.search.strategy import Losses, Strategy
from nas_llv.space.models.hooks import IlluminationModules

if TYPE_CHECKING:
    from nas_llv.losses import CompositeLoss

log = logging.getLogger(__name__)


def _upper_optim() -> OptimConfig:
    # TriCo Sec. 4.1: Adam (0.9, 0.999), γ_u = o_u = 1e-4 for ς (S1) and ω_i (S2)
    return OptimConfig(lr=1e-4, schedule="constant", grad_clip=None)


@dataclass(frozen=True)
class HyperConfig:
    """Options of strategy ``hyper`` (TriCo Alg. 1; docs/hyper.md): S1 the first
    ``epochs - s2_epochs`` epochs, S2 the rest."""

    s2_epochs: int = 0                   # epochs of S2 (ς frozen; ω_i upper, ω_s lower)
    upper_objective: Literal["fixed", "total"] = "fixed"   # Φ^ul: losses.upper, or the learned total
    hyper: OptimConfig = field(default_factory=_upper_optim)   # optimizer of ς (S1)
    illum: OptimConfig = field(default_factory=_upper_optim)   # optimizer of ω_i (S2)
    # ω_i: network submodules; None: the network's ``illumination_modules`` (TriCo's illumination
    # regulator N_ir, CollaBA's attention U-Net x^Att, RUAS's scene module)
    illum_modules: tuple[str, ...] | None = None

    def validate(self) -> None:
        # the upper bound, s2_epochs <= search.epochs, needs the shared config: HyperSearch checks it
        check_range("s2_epochs", self.s2_epochs, 0)


class NetWithLosses(nn.Module):
    """The network and its losses as one module, so overrides reach ω, α and ς by name.

    ``forward(batch, train)``: Φ^ll (``lower``, the learned composite) when ``train``, else Φ^ul
    (``upper``, fixed; the learned composite when None); returns (total, unweighted terms).
    batch['low']: (N, 3, H, W) in [0, 1]; the losses compare the outputs with batch['high'].
    """

    def __init__(self, net: nn.Module, lower: CompositeLoss, upper: CompositeLoss | None) -> None:
        super().__init__()
        self.net, self.lower, self.upper = net, lower, upper

    def forward(self, batch: Batch, train: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.lower if train or self.upper is None else self.upper
        return loss(self.net(batch["low"]), batch)


class SplitLevel(Level):
    """A Level over a NetWithLosses whose upper and lower variables are the given parameter lists, a
    split of its ς, α and ω (``hyper_level``: ς and α over ω; ``illum_level``: ω_i over ω_s)."""

    def __init__(self, name: str, module: NetWithLosses, upper: list[nn.Parameter], lower: list[nn.Parameter]) -> None:
        self.name, self.module = name, module
        self.upper, self.lower = named(module, upper), named(module, lower)

    def objective(self, batch: Batch, train: bool) -> LossClosure:
        return lambda ov: call(self.module, ov, batch, train)

    def iterate(self, method: Any, next_train: Callable[[], Batch], next_val: Callable[[], Batch]
                ) -> tuple[Scalar, dict[str, Scalar], Batch]:
        """Level.iterate, then one step of every adversarial term's discriminator (losses/adversarial.py)
        on the output of the last lower step; their losses are kept for the trajectory."""
        from nas_llv.losses.adversarial import step_discriminators  # on use: listing strategies stays light

        result = super().iterate(method, next_train, next_val)
        self.discriminator_losses = step_discriminators(self.module.lower)
        return result


def hyper_level(module: NetWithLosses, with_arch: bool = True) -> SplitLevel:
    """S1: upper ς (+ α when ``with_arch``), lower every network weight."""
    upper = module.lower.hyper_parameters() + (arch_parameters(module.net) if with_arch else [])
    return SplitLevel("hyper", module, upper, weight_parameters(module.net))


def illum_level(module: NetWithLosses, modules: tuple[str, ...]) -> SplitLevel:
    """S2: upper ω_i (weights under ``modules``), lower ω_s (the other weights); ς and α frozen."""
    children = dict(module.net.named_modules())
    unknown = [m for m in modules if m not in children or not m]
    if unknown:
        top = ", ".join(n for n, _ in module.net.named_children())
        raise ConfigError(f"search.illum_modules: no submodule '{unknown[0]}' in the network; top-level modules: {top}")
    owned = {id(p) for m in modules for p in children[m].parameters()}
    weights = weight_parameters(module.net)
    upper = [p for p in weights if id(p) in owned]
    lower = [p for p in weights if id(p) not in owned]
    if not upper or not lower:
        raise ConfigError(f"search.illum_modules {list(modules)}: S2 needs weights on both levels "
                          f"(got {len(upper)} upper and {len(lower)} lower tensors)")
    return SplitLevel("illum", module, upper, lower)


class UpperOptimizer:
    """Several optimizers stepped as one (α with ``search.arch``, ς with ``search.hyper``);
    ``after`` runs after each step (the ``clamp`` positivity's projection of ς)."""

    def __init__(self, parts: Mapping[str, torch.optim.Optimizer], after: tuple[Callable[[], None], ...] = ()) -> None:
        self.parts, self.after = dict(parts), after

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.parts.values():
            opt.step()
        for fn in self.after:
            fn()

    def state_dict(self) -> dict[str, Any]:
        return {k: opt.state_dict() for k, opt in self.parts.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, opt in self.parts.items():
            opt.load_state_dict(state[k])


def hyper_optimizer(level: SplitLevel, hyper_cfg: Any, arch_cfg: Any) -> UpperOptimizer:
    """ς with ``hyper_cfg``, α (the level's other upper parameters) with ``arch_cfg``."""
    weights = level.module.lower.learned
    sigma = {id(p) for p in level.module.lower.hyper_parameters()}
    parts = {}
    if sigma:
        parts["hyper"] = make_optimizer(hyper_cfg, [p for p in level.upper.values() if id(p) in sigma])
    alpha = [p for p in level.upper.values() if id(p) not in sigma]
    if alpha:
        parts["arch"] = make_optimizer(arch_cfg, alpha)
    return UpperOptimizer(parts, (weights.project_,) if weights is not None else ())


@STRATEGIES.register("hyper", config=HyperConfig)
class HyperSearch(Strategy):
    """TriCo Alg. 1: S1 learns ς (and α), S2 learns ω_i over ω_s with ς frozen (module docstring)."""

    warms_up = False  # its S2 epochs hold α anyway: search.arch_warmup does not apply

    def __init__(self, cfg: Any, opts: Any) -> None:
        super().__init__(cfg, opts)
        if opts.s2_epochs > cfg.epochs:
            raise ConfigError(f"search.s2_epochs={opts.s2_epochs} must be <= search.epochs={cfg.epochs}")
        self.s1_epochs = cfg.epochs - opts.s2_epochs

    def needed_losses(self, net: nn.Module) -> list[str]:
        return ["lower", "upper"] if self.opts.upper_objective == "fixed" else ["lower"]

    def upper_optimizer(self, name: str, level: Level) -> torch.optim.Optimizer:
        # ς (search.hyper) and α (search.arch) in S1; ω_i (search.illum) in S2. The weights' cosine
        # restarts in each phase: the loop schedules a level over its own epochs.
        if name == "hyper":
            return hyper_optimizer(level, self.opts.hyper, self.cfg.arch)
        return make_optimizer(self.opts.illum, list(level.upper.values()))

    def upper_scheduler(self, name: str, opt: Any, epochs: int) -> Any:
        """ς's (``search.hyper``) and α's (``search.arch``) schedules in S1, ω_i's (``search.illum``) in S2."""
        if name == "hyper":
            configs = {"hyper": self.opts.hyper, "arch": self.cfg.arch}
            return SchedulerGroup({k: make_scheduler(configs[k], o, epochs) for k, o in opt.parts.items()})
        return make_scheduler(self.opts.illum, opt, epochs)

    def build_levels(self, net: nn.Module, losses: Losses) -> dict[str, Level]:
        lower = losses("lower")
        upper = losses("upper") if self.opts.upper_objective == "fixed" else None
        if upper is None and "upper" in losses:
            log.warning("strategy 'hyper': losses.upper is not used with search.upper_objective: total")
        self.objective = NetWithLosses(net, lower, upper)
        levels: dict[str, Level] = {}
        if self.s1_epochs > 0:
            levels["hyper"] = hyper_level(self.objective)
            self._check_s1(levels["hyper"])
        if self.opts.s2_epochs > 0:
            levels["illum"] = illum_level(self.objective, self._illum_modules(net))
        self.levels = levels
        return levels

    def _check_s1(self, level: SplitLevel) -> None:
        if not level.upper:
            raise ConfigError("strategy 'hyper', S1: nothing to learn: losses.lower has no 'learned:' weights "
                              "and the space has no choices (add learned: {form: trico}, or use s2_epochs = epochs)")
        learned = self.objective.lower.learned is not None
        fixed = self.opts.upper_objective == "fixed"
        kind = self.cfg.hypergrad["type"]
        if learned and fixed and kind == "first_order":
            raise ConfigError("strategy 'hyper': hypergrad first_order gives ς no gradient, because the fixed "
                              "losses.upper does not depend on ς; use finite_difference, unrolled_exact, "
                              "implicit_cg or implicit_gn, or search.upper_objective: total")
        if learned and fixed and kind == "implicit_gn":
            log.warning("strategy 'hyper': implicit_gn moves ς along the vector of the individual losses, "
                        "not by their usefulness, when losses.upper is fixed (docs/hyper.md); prefer "
                        "finite_difference or implicit_cg, or search.upper_objective: total")

    def _illum_modules(self, net: nn.Module) -> tuple[str, ...]:
        """ω_i: ``search.illum_modules``, else the network's own ``illumination_modules``."""
        if self.opts.illum_modules is not None:
            return tuple(self.opts.illum_modules)
        if not isinstance(net, IlluminationModules):
            top = ", ".join(n for n, _ in net.named_children())
            raise ConfigError(f"strategy 'hyper', S2: the network ({type(net).__name__}) declares no "
                              f"illumination_modules; set search.illum_modules (top-level modules: {top})")
        return tuple(net.illumination_modules)

    def schedule(self, epoch: int) -> list[str]:
        return ["hyper"] if epoch < self.s1_epochs else ["illum"]

    def extra_columns(self) -> dict[str, Scalar]:
        """ς, ϱ or λ as the papers report them (hyper/), the factor on each loss (coef/), and the
        last loss of each adversarial term's discriminator (discriminator/)."""
        learned = self.objective.lower.learned
        disc = {f"discriminator/{k}": v for level in getattr(self, "levels", {}).values()
                for k, v in getattr(level, "discriminator_losses", {}).items()}
        if learned is None:
            return disc
        return {**learned.columns(), **disc}

    def val_loss(self, levels: Mapping[str, Level], batch: Batch) -> float:
        """Φ^ul on one D_ul batch (both phases share Φ^ul, so one level's is the objective)."""
        return next(iter(levels.values())).val_loss(batch)

    # -- results and checkpoints ---------------------------------------------------------------
    def finish(self, folder: Path, step: int) -> None:
        learned = self.objective.lower.learned
        if learned is not None:
            path = write_yaml(folder / "hyper.yaml", {
                "form": learned.form, "values": learned.values(), "coefficients": learned.coefficients(),
                "step": step, "s1_epochs": self.s1_epochs, "s2_epochs": self.opts.s2_epochs})
            log.info("learned loss hyper-variables written to %s: %s", path,
                     ", ".join(f"{k}={v:.4g}" for k, v in learned.values().items()))

    def state_dict(self) -> dict[str, Any]:
        return {"losses": self.objective.lower.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.objective.lower.load_state_dict(state["losses"])
