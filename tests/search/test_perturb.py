"""SDARTS-RS: each weight step takes the gradient at α + δ, δ ~ U[-ε, ε], and leaves α as it was."""
from __future__ import annotations

import torch
from torch import nn

from nas_llv.search.level import Level, arch_parameters, call, named, weight_parameters
from nas_llv.search.extensions.perturb import PerturbConfig, attach_perturbation
from nas_llv.space import nni_bridge
from nas_llv.space.supernet import ArchParams, MixedEdge

NAMES = ("conv_1x1", "conv_3x3", "dilconv_3x3_d2", "skip")


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.arch = ArchParams()
        self.edge = nni_bridge.plain(lambda: MixedEdge("e", NAMES, 3, self.arch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.edge(x)


class _Level(Level):
    """One mixed edge fitted to a target: the smallest level with an α."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.name, self.module = "edge", _Net().double()
        with torch.no_grad():
            self.module.arch["e"].normal_()
        self.upper = named(self.module, arch_parameters(self.module))
        self.lower = named(self.module, weight_parameters(self.module))
        self.attach(torch.optim.SGD(self.lower.values(), lr=1.0), None, None)

    def objective(self, batch, train):
        return lambda ov: (((call(self.module, ov, batch["low"]) - batch["high"]) ** 2).mean(), {})


def _batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {"low": torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64),
            "high": torch.rand(2, 3, 16, 16, generator=g, dtype=torch.float64)}


def _step(level: Level, seed: int = 7, shared_objective: bool = False) -> torch.Tensor:
    """The weights' change in one SGD step of lr 1 (minus the gradient), from RNG seed ``seed``."""
    before = [p.detach().clone() for p in level.lower.values()]
    torch.manual_seed(seed)
    batch = _batch()
    level.weight_step(batch, level.objective(batch, True) if shared_objective else None)
    return torch.cat([(b - p.detach()).flatten() for b, p in zip(before, level.lower.values())])


def _grad_at(level: Level, alphas: dict[str, torch.Tensor]) -> torch.Tensor:
    loss, _ = level.objective(_batch(), True)(alphas)
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(level.lower.values()))])


def test_the_weight_step_takes_the_gradient_at_the_perturbed_alpha():
    level = _Level()
    attach_perturbation(PerturbConfig(epsilon=0.03), {"edge": level})
    alpha = {n: a.detach().clone() for n, a in level.upper.items()}
    torch.manual_seed(7)
    delta = {n: torch.empty_like(a).uniform_(-0.03, 0.03) for n, a in alpha.items()}  # the draw the step makes
    want = _grad_at(level, {n: alpha[n] + delta[n] for n in alpha})
    unperturbed = _grad_at(level, alpha)
    got = _step(level, seed=7)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(got, unperturbed, rtol=1e-6, atol=0)  # δ changed the step
    for n, a in level.upper.items():
        assert torch.equal(a, alpha[n])  # the stored α is untouched


def test_the_noise_reaches_an_objective_built_before_the_step():
    """``speed.shortcuts`` hands the weight step the training objective the arch step built."""
    a, b = _Level(), _Level()
    for level in (a, b):
        attach_perturbation(PerturbConfig(epsilon=0.03), {"edge": level})
    torch.testing.assert_close(_step(a, shared_objective=True), _step(b), rtol=0, atol=0)


def test_epsilon_zero_is_the_unperturbed_step():
    off, zero = _Level(), _Level()
    attach_perturbation(None, {"edge": off})
    attach_perturbation(PerturbConfig(epsilon=0.0), {"edge": zero})
    assert off.perturbed_alphas() == {}
    torch.testing.assert_close(_step(zero), _step(off), rtol=0, atol=0)


def test_a_level_without_alpha_is_left_alone():
    level = _Level()
    level.upper = {}  # e.g. a level of loss hyper-variables ς
    attach_perturbation(PerturbConfig(), {"edge": level})
    assert level.perturbed_alphas() == {}
