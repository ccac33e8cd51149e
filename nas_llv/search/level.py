"""One level of a bilevel search: upper variables (α or ς), lower weights ω, two objectives.

A ``Level`` binds its training and validation objectives to fixed batches as functions of
parameter overrides, which is what a hypergradient method needs (``nas_llv.search.hypergrad``).
``arch_step`` updates the upper variables; ``weight_step`` takes one optimizer step on ω.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import nn

from nas_llv.distributed import all_reduce_mean
from nas_llv.search.hypergrad import Bilevel, HypergradMethod, apply_upper_grads
from nas_llv.search.hypergrad.base import frozen, leaves

Batch = Mapping[str, Any]
Overrides = Mapping[str, torch.Tensor]
# A level's loss on fixed batches as a function of parameter overrides -> (total, unweighted terms):
# what ``Level.objective`` returns and a hypergradient method evaluates.
LossClosure = Callable[[Overrides], tuple[torch.Tensor, dict[str, torch.Tensor]]]
# a trajectory figure: a number, or a 0-dim tensor left on the device until the loop reads its rows
# (``speed.sync_every``, ``nas_llv.rows``)
Scalar = float | torch.Tensor


class UpperPenalty(Protocol):
    """An α-only term of a level's upper loss (an expected cost, a zero-one loss): a scalar from
    ``probs``, label -> op probabilities (``ArchParams.prob``) of the level's own labels, built
    from the α the hypergradient passes; labels of other levels are read by the penalty itself."""

    name: str

    def __call__(self, probs: Mapping[str, torch.Tensor]) -> torch.Tensor: ...


def call(module: nn.Module, overrides: Overrides, *args: Any) -> Any:
    """``module(*args)`` with some parameters replaced (functionally) by ``overrides``."""
    if not overrides:
        return module(*args)
    return torch.func.functional_call(module, dict(overrides), args)


class Level:
    """Subclasses set ``name``, ``module``, ``upper``, ``lower`` and implement ``objective``.

    ``shortcuts`` and ``amp`` are set by the loop from the recipe's ``speed:`` section
    (docs/speed.md): with ``shortcuts`` an iteration builds the training objective once for the
    arch step and the first weight step, and keeps the upper loss the hypergradient evaluated
    first (``upper_loss``) for the log; ``amp`` is a context (e.g. bf16 autocast) every
    objective is evaluated under.
    """

    name: str
    module: nn.Module
    upper: dict[str, nn.Parameter]
    lower: dict[str, nn.Parameter]
    shortcuts: bool = False
    amp: Callable[[], Any] = contextlib.nullcontext
    upper_loss: torch.Tensor | None = None  # of the last arch step, see ``arch_step``
    penalties: tuple[UpperPenalty, ...] = ()  # α-only terms added to the upper loss (set by the loop)
    penalty_values: dict[str, Scalar] = {}  # each penalty's value at the last arch step's α (on the device)
    # the α each weight step's objective takes in place of the stored ones, drawn anew per step
    # (SDARTS-RS: α + noise, set by the perturb extension); none by default
    perturbed_alphas: Callable[[], Overrides] = dict
    # the upper loss from the plain one (a function of overrides) at overrides: e.g. its expectation
    # over presence choices (the presence extension); None: the plain upper loss
    upper_mixture: Callable[[Callable[[Overrides], torch.Tensor], Overrides], torch.Tensor] | None = None
    arch_held: bool = False  # weight steps only (``search.arch_warmup``, set by the loop)
    # ``speed.compile`` (set by the loop): a weight step passes every α and ω explicitly, ω as leaves
    # that require grad and α detached, so it runs the compiled graph the unrolled step's ∇_ω runs, and
    # that graph's backward computes no ∇_α (a compiled backward computes the gradient of every input
    # that requires grad; eager autograd skips the ones not asked for, so the eager path is unchanged)
    explicit_grads: bool = False

    def objective(self, batch: Batch, train: bool) -> LossClosure:
        """The loss on ``batch`` as a function of overrides: (total, unweighted terms)."""
        raise NotImplementedError

    def attach(self, weight_opt: torch.optim.Optimizer, arch_opt: torch.optim.Optimizer | None,
               grad_clip: float | None) -> None:
        self.weight_opt, self.arch_opt, self.grad_clip = weight_opt, arch_opt, grad_clip

    @property
    def lr(self) -> float:
        return float(self.weight_opt.param_groups[0]["lr"])

    def arch_step(self, method: HypergradMethod, train_batch: Batch, val_batch: Batch,
                  lower_obj: LossClosure | None = None) -> None:
        """One upper step: hypergradient of the validation objective, then the arch optimizer.

        ``lower_obj``: the training objective on ``train_batch`` when the caller built it already.
        Keeps in ``upper_loss`` the first upper loss the method evaluated (first_order: at ω;
        finite_difference and unrolled_exact: at the unrolled ω')."""
        lower_obj = lower_obj or self.objective(train_batch, True)
        upper_obj = self.objective(val_batch, False)
        self.upper_loss = None

        def upper_loss(ov: Overrides) -> torch.Tensor:
            if self.upper_mixture is None:
                loss = self._eval(upper_obj, ov)[0]
            else:
                loss = self.upper_mixture(lambda o: self._eval(upper_obj, o)[0], ov)
            if self.upper_loss is None:
                self.upper_loss = loss.detach()
            return loss + self.penalty(ov) if self.penalties else loss

        problem = Bilevel(upper=self.upper, lower=self.lower, lower_lr=self.lr,
                          lower_loss=lambda ov: self._eval(lower_obj, ov)[0], upper_loss=upper_loss)
        grads = method(problem)
        self.arch_opt.zero_grad(set_to_none=True)
        apply_upper_grads(self.upper, grads)
        self.arch_opt.step()

    def penalty(self, ov: Overrides) -> torch.Tensor:
        """The sum of ``penalties`` at the α in ``ov`` (the level's own where not overridden);
        each value is kept in ``penalty_values``, for the trajectory."""
        probs = self.relaxed(ov)
        values = {p.name: p(probs) for p in self.penalties}
        self.penalty_values = {k: v.detach() for k, v in values.items()}
        return sum(values.values())  # type: ignore[return-value]

    def relaxed(self, ov: Overrides) -> dict[str, torch.Tensor]:
        """label -> op probabilities of every α among ``upper``, read from ``ov`` where given."""
        from nas_llv.space.supernet import arch_modules

        names = {id(p): n for n, p in self.upper.items()}
        return {label: arch.prob(label, ov.get(names[id(a)], a)) for arch in arch_modules(self.module)
                for label, a in arch.items() if id(a) in names}

    def arch_variables(self) -> dict[str, nn.Parameter]:
        """The α among ``upper`` (none for a level of loss hyper-variables ς), by their names in ``upper``."""
        arch = {id(p) for p in arch_parameters(self.module)}
        return {n: p for n, p in self.upper.items() if id(p) in arch}

    def fixed_call(self, module: nn.Module, *args: Any) -> Any:
        """``module(*args)`` where this level takes no gradient with respect to ``module``'s parameters
        (another level's module): with ``explicit_grads`` and grad mode on, they are passed frozen
        (without grad, as the module's own level calls it there: the same compiled graph)."""
        if not (self.explicit_grads and torch.is_grad_enabled()):
            return module(*args)
        return call(module, frozen(dict(module.named_parameters())), *args)

    def _eval(self, objective: LossClosure, ov: Overrides) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with self.amp():
            return objective(ov)

    def weight_step(self, batch: Batch, objective: LossClosure | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One optimizer step on ω with the training objective (``objective``: already built on
        ``batch``) at the α of ``perturbed_alphas()``; returns (loss, terms), 0-dim tensors on the
        device (nothing is read to the host here)."""
        overrides, params = self.perturbed_alphas(), list(self.lower.values())
        wrt = params
        if self.explicit_grads:
            overrides = {**frozen(self.arch_variables()), **overrides, **leaves(self.lower)}
            wrt = [overrides[n] for n in self.lower]
        total, terms = self._eval(objective or self.objective(batch, True), overrides)
        grads = all_reduce_mean(dict(zip(self.lower, torch.autograd.grad(total, wrt))))  # over ranks
        for p, g in zip(params, grads.values()):
            p.grad = g
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.weight_opt.step()
        self.weight_opt.zero_grad(set_to_none=True)
        logged = all_reduce_mean({"": total.detach(), **{k: v.detach() for k, v in terms.items()}})
        return logged.pop(""), logged  # the global batch's (mean over ranks)

    def iterate(self, method: HypergradMethod, next_train: Callable[[], Batch], next_val: Callable[[], Batch]
                ) -> tuple[Scalar, dict[str, Scalar], Batch]:
        """One upper step, then ``method.lower_steps`` weight steps (the first on the same training
        batch, as DARTS). Returns the mean training loss, mean terms (0-dim tensors) and the
        validation batch."""
        train_b, val_b = next_train(), next_val()
        train_obj = self.objective(train_b, True) if self.shortcuts else None
        if self.arch_held:
            self.upper_loss = None
        else:
            self.arch_step(method, train_b, val_b, train_obj)
        losses, terms = [], []
        for i in range(method.lower_steps):
            loss, t = self.weight_step(train_b, train_obj) if i == 0 else self.weight_step(next_train())
            losses.append(loss)
            terms.append(t)
        k = len(losses)
        return sum(losses) / k, {n: sum(t[n] for t in terms) / k for n in terms[0]}, val_b

    @torch.no_grad()
    def val_loss_tensor(self, batch: Batch) -> torch.Tensor:
        """The validation objective on ``batch`` (of the global batch: the mean over ranks), on the device."""
        return all_reduce_mean({"val": self.objective(batch, False)({})[0].detach()})["val"]

    def val_loss(self, batch: Batch) -> float:
        """``val_loss_tensor`` read to the host."""
        return float(self.val_loss_tensor(batch))


def named(module: nn.Module, params: list[nn.Parameter]) -> dict[str, nn.Parameter]:
    """``params`` keyed by their names inside ``module`` (for functional calls)."""
    wanted = {id(p) for p in params}
    return {n: p for n, p in module.named_parameters() if id(p) in wanted}


def arch_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Every α of ``module``. The supernet module (and with it NNI) is imported here, on use, so
    that importing the strategies (the recipe loader lists their options) stays light."""
    from nas_llv.space import supernet

    return supernet.arch_parameters(module)


def weight_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The weights ω of ``module``: every parameter that is not an α (see ``arch_parameters``)."""
    from nas_llv.space import supernet

    return supernet.weight_parameters(module)


def attach_penalty(levels: Mapping[str, Level], penalty: UpperPenalty) -> list[str]:
    """Add ``penalty`` to the upper loss of every level whose upper variables hold α
    (``Level.arch_variables``); returns the names of those levels. Levels of ς only (loss hyper-variables) are
    left alone."""
    attached = []
    for name, level in levels.items():
        if level.arch_variables():
            level.penalties = (*level.penalties, penalty)
            attached.append(name)
    return attached
