"""The bilevel problem, the hypergradient method base class, and named-tensor helpers.

A ``Bilevel`` holds named upper variables u (architecture parameters α, loss
hyper-variables ς, or the upper network of a two-network problem), named lower variables ω
(network weights), and the two losses as callables of a name -> tensor mapping. A
``HypergradMethod`` maps a ``Bilevel`` to dL_up/du for each upper name.

Methods never touch the caller's tensors: they differentiate with respect to detached copies
(``detach().requires_grad_()`` shares storage, copies nothing), pass every variable to the loss
callables explicitly, and use ``torch.autograd.grad``, so no ``.grad`` is written and ω is never
perturbed in place. ``apply_upper_grads`` then hands the result to an ordinary optimizer.
"""
from __future__ import annotations

import logging
import typing
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from nas_llv.config import checked, field_values, register_with_options
from nas_llv.distributed import all_reduce_mean
from nas_llv.registry import HYPERGRADS

logger = logging.getLogger(__name__)

Tensors = dict[str, Tensor]
Loss = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass
class Bilevel:
    """min_u L_up(ω*(u), u)  s.t.  ω*(u) = argmin_ω L_low(ω, u).

    ``upper``/``lower``: name -> tensor (disjoint names). ``lower_loss``/``upper_loss`` take a
    mapping of overrides (upper and/or lower names) and return a scalar; names left out use the
    current values. The methods always pass every name, so a callable must read each variable
    from the mapping. ``lower_lr`` is ξ, the lower optimizer's current learning rate.
    """

    upper: dict[str, Tensor]
    lower: dict[str, Tensor]
    lower_loss: Loss
    upper_loss: Loss
    lower_lr: float

    def __post_init__(self) -> None:
        if not self.upper:
            raise ValueError("Bilevel: 'upper' is empty; give at least one upper-level variable")
        if not self.lower:
            raise ValueError("Bilevel: 'lower' is empty; give at least one lower-level variable")
        shared = sorted(set(self.upper) & set(self.lower))
        if shared:
            raise ValueError(f"Bilevel: names {shared} are both upper and lower variables; they must be disjoint")
        if not isinstance(self.lower_lr, (int, float)) or self.lower_lr < 0:
            raise ValueError(f"Bilevel: lower_lr={self.lower_lr!r} must be a number >= 0")


# ---------------------------------------------------------------- named-tensor helpers

def leaves(tensors: Mapping[str, Tensor]) -> Tensors:
    """Fresh leaves sharing storage with ``tensors``: gradients go to them, never to the originals."""
    return {k: v.detach().requires_grad_(True) for k, v in tensors.items()}


def frozen(tensors: Mapping[str, Tensor]) -> Tensors:
    """``tensors`` detached: passed explicitly where no gradient is taken with respect to them. Eager
    autograd skips a gradient not asked for; a compiled graph's backward computes one for every input
    that requires grad, so the methods pass what they do not differentiate frozen."""
    return {k: v.detach() for k, v in tensors.items()}


def grads(loss: Tensor, wrt: Mapping[str, Tensor], create_graph: bool = False,
          retain_graph: bool | None = None) -> Tensors:
    """d loss / d wrt[name] for each name; zeros where the loss does not depend on it.

    In a data-parallel run (``nas_llv.distributed``) the result is averaged over the ranks, so
    every method sees the gradient of the global batch's mean loss; with ``create_graph`` the
    average stays differentiable (its backward averages again), for methods that differentiate it.
    """
    names = list(wrt)
    if not loss.requires_grad:
        return {n: torch.zeros_like(wrt[n]) for n in names}
    got = torch.autograd.grad(loss, [wrt[n] for n in names], create_graph=create_graph,
                              retain_graph=retain_graph, allow_unused=True)
    out = {n: torch.zeros_like(wrt[n]) if g is None else g for n, g in zip(names, got)}
    return all_reduce_mean(out, differentiable=create_graph)


def vjp(outputs: Mapping[str, Tensor], wrt: Mapping[str, Tensor], cotangents: Mapping[str, Tensor],
        retain_graph: bool = True) -> Tensors:
    """sum_k <cotangents[k], d outputs[k] / d wrt[name]> for each name (zeros where unused).

    With ``outputs`` = ∇_ω L (built with create_graph) this is a Hessian-vector product; averaged
    over the ranks of a data-parallel run, as ``grads`` is.
    """
    keys = [k for k in outputs if outputs[k].requires_grad]
    names = list(wrt)
    if not keys:
        return {n: torch.zeros_like(wrt[n]) for n in names}
    got = torch.autograd.grad([outputs[k] for k in keys], [wrt[n] for n in names],
                              grad_outputs=[cotangents[k] for k in keys],
                              retain_graph=retain_graph, allow_unused=True)
    return all_reduce_mean({n: torch.zeros_like(wrt[n]) if g is None else g for n, g in zip(names, got)})


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """sum over names of <a[name], b[name]> (a 0-dim tensor)."""
    return sum((a[k] * b[k]).sum() for k in a)  # type: ignore[return-value]


def l2_norm(a: Mapping[str, Tensor]) -> Tensor:
    """sqrt(dot(a, a)) (a 0-dim tensor): the 2-norm of each tensor by one foreach kernel, then of those."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(list(a.values()))))


def axpy(alpha: float | Tensor, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> Tensors:
    """y + alpha * x, name by name, each in y's memory layout (a 1x1 kernel's gradient may come back
    contiguous where the channels-last kernel is not: a compiled forward guards on strides, and would
    compile again for the unrolled ω'). Where no graph is built, as two foreach kernels over all the
    names (the same arithmetic; a few operators instead of three per weight, GPU launches each)."""
    keys = list(y)
    if torch.is_grad_enabled() and any(t.requires_grad for d in (x, y) for t in d.values()):
        return {k: y[k].clone(memory_format=torch.preserve_format).add_(alpha * x[k]) for k in keys}
    ys = [y[k] for k in keys]
    out = torch._foreach_add(ys, torch._foreach_mul([x[k] for k in keys], alpha))
    return {k: o if o.stride() == t.stride() else torch.empty_strided(t.shape, t.stride(), dtype=t.dtype,
                                                                       device=t.device).copy_(o)
            for k, o, t in zip(keys, out, ys)}


def evaluate(loss: Loss, upper: Mapping[str, Tensor], lower: Mapping[str, Tensor]) -> Tensor:
    """``loss`` with every upper and lower variable given explicitly."""
    return loss({**upper, **lower})


# ---------------------------------------------------------------- methods and their options

class _CheckedOptions(type):
    """Constructing a method checks option names, types and ranges (``nas_llv.config``), so a
    recipe's ``search.hypergrad`` fails with one ConfigError line."""

    def __call__(cls, **options: Any) -> Any:
        who = f"hypergradient method '{getattr(cls, 'method_name', cls.__name__)}':"
        return checked(cls, super().__call__(**field_values(cls, options, who)), who)


class HypergradMethod(metaclass=_CheckedOptions):
    """Maps a ``Bilevel`` to {upper name: dL_up/du} (same shapes, dtypes and devices).

    ``lower_steps``: lower-level optimizer steps the strategy should take before each call
    (the method itself never updates ω). ``info``: diagnostics of the last call (numbers or 0-dim
    tensors).
    """

    method_name: typing.ClassVar[str] = ""
    lower_steps: int = 1

    def __call__(self, problem: Bilevel) -> Tensors:
        raise NotImplementedError

    def validate(self) -> None:
        """Raise ValueError for an option out of range."""

    @property
    def info(self) -> dict[str, float | Tensor]:
        return self.__dict__.setdefault("_info", {})

    def _record(self, **values: float | Tensor) -> None:
        """Keep diagnostics of this call: numbers, or 0-dim tensors left on the device (read with the
        trajectory rows, ``speed.sync_every``)."""
        # frozen dataclasses forbid attribute assignment; diagnostics live in __dict__ directly
        self.__dict__["_info"] = {k: v.detach() if torch.is_tensor(v) else float(v) for k, v in values.items()}

    def _warn_once(self, key: str, msg: str, *args: Any) -> None:
        warned = self.__dict__.setdefault("_warned", set())
        (logger.debug if key in warned else logger.warning)(msg, *args)
        warned.add(key)


# ``@register(name)`` above ``@dataclass``: the method's fields are its options, registered as its
# options dataclass, so a recipe checks them on loading; records ``method_name`` (for messages)
register = partial(register_with_options, HYPERGRADS)


def apply_upper_grads(params: Mapping[str, Tensor], grads: Mapping[str, Tensor]) -> None:
    """Set ``params[name].grad = grads[name]`` (replacing any old .grad) for an optimizer step."""
    missing = sorted(set(params) - set(grads))
    if missing:
        raise ValueError(f"apply_upper_grads: no gradient for {missing}; got gradients for {sorted(grads)}")
    for name, p in params.items():
        g = grads[name]
        if g.shape != p.shape:
            raise ValueError(f"apply_upper_grads: gradient of '{name}' has shape {tuple(g.shape)}, "
                             f"the variable {tuple(p.shape)}")
        p.grad = g.detach().to(dtype=p.dtype, device=p.device).clone()
