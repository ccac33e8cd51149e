"""First-order and one-step-unrolled hypergradients (DARTS Sec. 2.3; RUAS Sec. 4.2, Alg. 1).

One-step unrolling replaces ω*(u) by one lower gradient step ω' = ω - ξ ∇_ω L_low(ω, u), so

    dL_up(ω', u)/du = ∇_u L_up(ω', u) - ξ ∇²_{uω} L_low(ω, u) v,   v = ∇_ω' L_up(ω', u).

- ``first_order``:       ∇_u L_up(ω, u) (ξ = 0; DARTS first order).
- ``finite_difference``: the mixed second-derivative term by central differences of the
  TRAINING loss, ∇²_{uω} L_low v ≈ [∇_u L_low(ω⁺, u) - ∇_u L_low(ω⁻, u)] / (2ε), ω± = ω ± ε v,
  ε = r / ‖v‖ (DARTS Eq. 8; RUAS Sec. 4.2; BGL Eq. 5; TriCo Alg. 1, the A_ω term).
  The public RUAS code used the architecture (upper) loss here; that is a bug, not copied.
  BGL Eq. (5) and TriCo Alg. 1 write the perturbation direction as ∇_ω L_low; the chain rule
  needs v = ∇_ω' L_up, as in DARTS, and that is what is used.
- ``unrolled_exact``:    the same expression by double backpropagation through ω' (the ground
  truth for ``finite_difference``; memory of one extra graph of ∇_ω L_low).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.profiler import record_function

from nas_llv.search.hypergrad.base import (Bilevel, HypergradMethod, Tensors, axpy, evaluate, frozen, grads, l2_norm,
                                          leaves, register)


@register("first_order")
@dataclass(frozen=True)
class FirstOrder(HypergradMethod):
    """∇_u L_up(ω, u) at the current ω; zero for an upper variable L_up does not use directly.

    Cost: 1 forward + 1 backward of L_up.
    """

    def __call__(self, problem: Bilevel) -> Tensors:
        u, w = leaves(problem.upper), frozen(problem.lower)
        return {k: g.detach() for k, g in grads(evaluate(problem.upper_loss, u, w), u).items()}


def _unrolled_step(problem: Bilevel, u: Tensors, w: Tensors) -> Tensors:
    """ω' = ω - ξ ∇_ω L_low(ω, u) as fresh leaves (no graph back to ω)."""
    g = grads(evaluate(problem.lower_loss, frozen(u), w), w)
    with torch.no_grad():
        return leaves(axpy(-problem.lower_lr, g, w))


@register("finite_difference")
@dataclass(frozen=True)
class FiniteDifference(HypergradMethod):
    """DARTS second-order approximation with a finite-difference Hessian-vector product.

    ``r``: ε = r / ‖v‖ (DARTS uses 0.01). Central differences: error O(ε²) in ∇²_{uω} L_low v.
    Cost: 3 forward + 3 backward of L_low (one to ω, two to u) and 1 forward + 1 backward of L_up.
    ω is never modified: ω' and ω± are new tensors passed as overrides.
    """

    r: float = 0.01
    batched: bool = False

    def validate(self) -> None:
        if not (self.r > 0 and math.isfinite(self.r)):
            raise ValueError(f"r={self.r} must be a finite number > 0")

    def __call__(self, problem: Bilevel) -> Tensors:
        u, w = leaves(problem.upper), leaves(problem.lower)
        with record_function("hypergrad.unrolled_step"):
            w1 = _unrolled_step(problem, u, w)
        with record_function("hypergrad.upper"):
            both = grads(evaluate(problem.upper_loss, u, w1), {**u, **w1})
        direct = {k: both[k].detach() for k in u}
        v = {k: both[k].detach() for k in w1}
        norm = l2_norm(v)
        if problem.lower_lr == 0:
            self._record(eps=0.0, v_norm=norm)
            return direct
        # ε on the device, never read here: where v = 0 (‖v‖ = 0), ω± = ω, the difference is 0
        # and its scale ξ‖v‖/(2r) is 0 too, so the result is the direct term, as the formula's limit
        eps = self.r / norm.clamp_min(torch.finfo(norm.dtype).tiny)
        with torch.no_grad():
            w_plus, w_minus = axpy(eps, v, w), axpy(-eps, v, w)
        with record_function("hypergrad.perturbations"):
            diff = self._perturbed(problem, u, w_plus, w_minus)
        scale = problem.lower_lr / (2 * eps)
        self._record(eps=torch.where(norm > 0, eps, 0.0), v_norm=norm)
        return {k: (direct[k] - scale * diff[k]).detach() for k in u}

    def _perturbed(self, problem: Bilevel, u: Tensors, w_plus: Tensors, w_minus: Tensors) -> Tensors:
        """∇_u L_low(ω⁺, u) - ∇_u L_low(ω⁻, u). ``batched``: both losses in one call vectorised over
        the two weight sets (``torch.func.vmap``), and one backward of their difference."""
        if not self.batched:
            g_plus = grads(evaluate(problem.lower_loss, u, w_plus), u)
            g_minus = grads(evaluate(problem.lower_loss, u, w_minus), u)
            return {k: g_plus[k] - g_minus[k] for k in u}
        pair = {k: torch.stack([w_plus[k], w_minus[k]]) for k in w_plus}
        losses = torch.func.vmap(lambda w: evaluate(problem.lower_loss, u, w), randomness="same")(pair)
        return grads(losses[0] - losses[1], u)


@register("unrolled_exact")
@dataclass(frozen=True)
class UnrolledExact(HypergradMethod):
    """The one-step unrolled hypergradient by double backprop through ω' = ω - ξ ∇_ω L_low.

    Cost: 1 forward + 1 backward (create_graph) of L_low, 1 forward of L_up and one backward
    through L_up and the graph of ∇_ω L_low (about 2 backward passes of L_low).
    """

    def __call__(self, problem: Bilevel) -> Tensors:
        u, w = leaves(problem.upper), leaves(problem.lower)
        g = grads(evaluate(problem.lower_loss, u, w), w, create_graph=True)
        w1 = axpy(-problem.lower_lr, g, w)  # keeps the graph to u through g
        out = grads(evaluate(problem.upper_loss, u, w1), u)
        return {k: t.detach() for k, t in out.items()}
