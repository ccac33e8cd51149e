"""A presence choice (``MixedGate``, e.g. ``denoise.presence`` of the space ``ruas_denoise_capacity``)
judged by the loss with the sub-network against the loss without it (docs/extensions.md, "presence").

In the plain supernet a presence gate scales the sub-network's contribution, u - w·head(...). The
head is a convolution, so the weights absorb any w, and once they fit, the upper loss's gradient
in w is about zero whatever the data (docs/quality.md, "Keeping the denoiser"). A binary choice
needs the loss with the module against the loss without it. With ``search.presence`` on, the
upper loss of a level that holds presence labels is their expectation over the choices,

    E[L] = Σ_z Π_g p_g^z_g (1 - p_g)^(1 - z_g) · L(z),   z_g ∈ {0, 1} the presence of gate g,

so for one gate ∂E[L]/∂α = (L_on - L_off)·∂p/∂α: the choice keeps the sub-network where it lowers
the loss by more than what the other terms of the upper loss (the cost hinge) charge for it. The
other α inside the sub-network get their gradient from L_on, weighted by p. This is exact (two
evaluations per gate, 2^k for k gates), not a sampled estimate.

``weights: present`` (default) holds every gate present outside those evaluations, so the weight
steps train the sub-network as itself, whatever p is, and the end-of-epoch validation scores the
network with it; ``soft`` leaves the weight steps on the soft gate w·r.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from nas_llv.config import ConfigError
from nas_llv.search.extensions.base import Extension, Search, drawn_not_derived, register
from nas_llv.search.level import Batch, Level, Overrides, Scalar
from nas_llv.space.supernet import MixedGate

MAX_GATES = 4  # 2^k upper-loss evaluations per arch step


@dataclass(frozen=True)
class PresenceConfig:
    """Presence labels chosen by E[L] over present/absent (the loss with against without)."""

    weights: Literal["present", "soft"] = "present"   # present: weight steps with the sub-network; soft: w·r


def expected_loss(gates: list[MixedGate], probs: dict[str, torch.Tensor], evaluate: Callable[[], torch.Tensor],
                  restore: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Σ_z P(z)·L(z) over the presences z of ``gates`` (``probs``: label -> op probabilities), each
    L(z) by ``evaluate`` with the gates forced to z; the gates are left at ``restore``. Also returns
    each gate's L(absent) - L(present), the others at their expectation (the gain of keeping it)."""
    p = [probs[g.label][g.present] for g in gates]
    losses: dict[tuple[int, ...], torch.Tensor] = {}
    try:
        for z in itertools.product((1, 0), repeat=len(gates)):
            for gate, on in zip(gates, z):
                gate.forced = float(on)
            losses[z] = evaluate()
    finally:
        for gate in gates:
            gate.forced = restore

    def chance(z: tuple[int, ...], skip: int = -1) -> torch.Tensor:
        return math.prod((pi if on else 1 - pi) for i, (pi, on) in enumerate(zip(p, z)) if i != skip)

    total = sum(chance(z) * loss for z, loss in losses.items())
    gains = {g.label: sum(chance(z, i) * (loss if not z[i] else -loss) for z, loss in losses.items()).detach()
             for i, g in enumerate(gates)}
    return total, gains  # type: ignore[return-value]


@register("presence", PresenceConfig)
class Presence(Extension):
    """Presence labels judged by the loss with against without their sub-network (E[L] over both)."""

    order = 45

    @classmethod
    def check(cls, options: PresenceConfig, search: Any) -> None:
        drawn_not_derived("presence", search)

    def setup(self, search: Search) -> None:
        self.gates = [m for m in search.net.modules() if isinstance(m, MixedGate)]
        if not self.gates:
            raise ConfigError("search.presence: the search space has no presence label (a part choice such as "
                              "denoise.presence of the space ruas_denoise_capacity); leave search.presence unset")
        self.restore = 1.0 if self.options.weights == "present" else None
        for gate in self.gates:
            gate.forced = self.restore
        self.gains: dict[str, torch.Tensor] = {}  # 0-dim, on the device (read with the trajectory rows)
        self.held: dict[str, list[str]] = {}  # level name -> the presence labels it learns

    def attach(self, search: Search) -> None:
        for name, level in search.levels.items():
            labels = set(level.relaxed({}))
            gates = [g for g in self.gates if g.label in labels]
            if len(gates) > MAX_GATES:
                raise ConfigError(f"search.presence: level {level.name} holds {len(gates)} presence labels; at most "
                                  f"{MAX_GATES} (2^k upper-loss evaluations per arch step)")
            if gates:
                level.upper_mixture = self._mixture(level, gates)
                self.held[name] = [g.label for g in gates]
        held = {label for labels in self.held.values() for label in labels}
        missing = [g.label for g in self.gates if g.label not in held]
        if missing:
            raise ConfigError(f"search.presence: no level of this strategy learns {', '.join(missing)}")

    def _mixture(self, level: Level, gates: list[MixedGate]
                 ) -> Callable[[Callable[[Overrides], torch.Tensor], Overrides], torch.Tensor]:
        def mixture(evaluate: Callable[[Overrides], torch.Tensor], ov: Overrides) -> torch.Tensor:
            total, gains = expected_loss(gates, level.relaxed(ov), lambda: evaluate(ov), self.restore)
            self.gains.update(gains)
            return total

        return mixture

    def columns(self, name: str, level: Level, batch: Batch) -> dict[str, Scalar]:
        """``presence/<label>/gain``: L(absent) - L(present) at the level's last arch step."""
        return {f"presence/{label}/gain": self.gains[label] for label in self.held.get(name, ()) if label in self.gains}
