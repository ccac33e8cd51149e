from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from torch import nn

import nas_llv.losses  # noqa: F401  (registers the losses)
from nas_llv.config import ConfigError
from nas_llv.losses import CompositeLoss, LossHypers

NAMES = ["a", "b", "c"]
CASES = [("trico", "exp"), ("trico", "clamp"), ("collaba", "exp"), ("collaba", "clamp"), ("softplus", None)]


def _hypers(form: str, positivity: str | None, names=NAMES) -> LossHypers:
    return LossHypers(names, form=form, positivity=positivity).double()


def _set(lw: LossHypers, values: list[float]) -> None:
    """Set the hyper-variables (ς, ϱ) to ``values`` through the parametrisation."""
    v = torch.tensor(values, dtype=torch.float64)
    with torch.no_grad():
        lw.raw.copy_(v.log() if lw.positivity == "exp" else v)


@pytest.mark.parametrize("form,positivity", CASES)
def test_hypers_start_at_one(form, positivity):
    lw = _hypers(form, positivity)
    assert lw.values() == {n: pytest.approx(1.0, abs=1e-12) for n in NAMES}
    assert lw.hyper_parameters() == [lw.raw] and isinstance(lw.raw, nn.Parameter)


@pytest.mark.parametrize("form,positivity", CASES[:4])
def test_gradient_matches_the_analytic_derivative(form, positivity):
    lw = _hypers(form, positivity)
    s = [0.3, 1.0, 2.5]
    _set(lw, s)
    L = torch.tensor([0.7, 2.0, 0.1], dtype=torch.float64)
    lw(dict(zip(NAMES, L))).backward()
    s, L = torch.tensor(s, dtype=torch.float64), L
    if form == "trico":
        d = -L / (2 * s**2) + 2 * s / (1 + s**2)
    else:
        d = -L / s**3 + 2 * s / (1 + s**2)
    expected = d * s if positivity == "exp" else d  # chain rule through ς = exp(raw)
    assert torch.allclose(lw.raw.grad, expected, rtol=1e-12, atol=1e-14)


def test_total_values_of_each_form():
    L = {"a": torch.tensor(0.5, dtype=torch.float64), "b": torch.tensor(3.0, dtype=torch.float64)}
    tri, col = _hypers("trico", "exp", ["a", "b"]), _hypers("collaba", "clamp", ["a", "b"])
    _set(tri, [2.0, 0.5])
    _set(col, [2.0, 0.5])
    assert tri(L).item() == pytest.approx(0.5 / 4 + math.log(5) + 3.0 / 1 + math.log(1.25))
    assert col(L).item() == pytest.approx(0.5 / 8 + math.log(5) + 3.0 / 0.5 + math.log(1.25))
    assert tri.coefficients() == {"a": pytest.approx(0.25), "b": pytest.approx(1.0)}


def test_softplus_hypers_are_normalised():
    lw = _hypers("softplus", None)
    with torch.no_grad():
        lw.raw.copy_(torch.tensor([-1.0, 0.5, 3.0]))
    w = torch.nn.functional.softplus(lw.raw.detach())
    lam = 3 * w / w.sum()
    assert sum(lw.values().values()) == pytest.approx(3.0)
    L = torch.tensor([0.2, 1.0, 4.0], dtype=torch.float64)
    assert lw(dict(zip(NAMES, L))).item() == pytest.approx((lam * L).sum().item())


@pytest.mark.parametrize("positivity", ["exp", "clamp"])
def test_positivity_survives_a_large_step(positivity):
    lw = LossHypers(NAMES, form="trico", positivity=positivity)
    opt = torch.optim.SGD(lw.hyper_parameters(), lr=5.0)
    # With L ~ 0 the gradient is ~ +1 (from ln(1 + ς²)) at ς = 1: a plain step of 5 lands at ς = -4.
    lw({n: torch.tensor(1e-6) for n in NAMES}).backward()
    opt.step()
    if positivity == "clamp":
        assert torch.allclose(lw.raw.detach(), torch.full((3,), -4.0), atol=1e-4)  # left the feasible set
        lw.project_()
        assert torch.equal(lw.raw.detach(), torch.full((3,), lw.clamp_min))
    else:
        assert torch.allclose(lw.hypers().detach(), torch.full((3,), math.exp(-5.0)), rtol=1e-4)
    w = lw.hypers()
    assert (w > 0).all() and torch.isfinite(lw({n: torch.tensor(1.0) for n in NAMES}))


def _trico_root(L: float) -> float:
    roots = np.roots([4.0, -L, 0.0, -L])  # 4ς³ - Lς² - L = 0
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0]
    assert len(real) == 1
    return real[0]


def _minimise(lw: LossHypers, L: float) -> float:
    opt = torch.optim.LBFGS(lw.hyper_parameters(), lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        total = lw({"a": torch.tensor(L, dtype=torch.float64)})
        total.backward()
        return total

    opt.step(closure)
    return lw.values()["a"]


@pytest.mark.parametrize("L", [0.5, 2.0, 5.0])
def test_trico_stationary_point(L):
    assert _trico_root(2.0) == pytest.approx(1.0)
    for positivity in ("exp", "clamp"):
        assert _minimise(_hypers("trico", positivity, ["a"]), L) == pytest.approx(_trico_root(L), rel=1e-3)


@pytest.mark.parametrize("L", [0.5, 5.0])
def test_collaba_stationary_point(L):
    closed = math.sqrt((L + math.sqrt(L * L + 8 * L)) / 4)
    assert _minimise(_hypers("collaba", "exp", ["a"]), L) == pytest.approx(closed, rel=1e-3)


def test_bad_options_and_mismatched_losses():
    with pytest.raises(ConfigError, match="allowed: trico, collaba, softplus"):
        LossHypers(NAMES, form="kendall")
    with pytest.raises(ConfigError, match="softplus"):
        LossHypers(NAMES, form="softplus", positivity="exp")
    with pytest.raises(ConfigError, match="distinct"):
        LossHypers(["a", "a"])
    with pytest.raises(ConfigError, match="expected exactly"):
        LossHypers(NAMES)({"a": torch.tensor(1.0)})


class _Off(nn.Module):
    available = False


def test_unavailable_losses_are_dropped_with_one_line(caplog):
    with caplog.at_level(logging.INFO):
        lw = LossHypers({"a": nn.Identity(), "p": _Off(), "b": nn.Identity()})
    assert lw.names == ["a", "b"]
    lines = [r for r in caplog.records if r.name == "nas_llv.losses.weighting"]
    assert len(lines) == 1 and "p" in lines[0].getMessage()


def test_composite_with_learned_hypers():
    comp = CompositeLoss({"scene": {"type": "ruas_scene"}, "tv": {"type": "tv"}}, learned={"form": "trico"})
    out = {"t": torch.rand(1, 3, 16, 16) + 0.1, "x": torch.rand(1, 3, 16, 16)}
    total, parts = comp(out, {"low": torch.rand(1, 3, 16, 16)})
    expected = sum(v.item() / 2 for v in parts.values()) + 2 * math.log(2)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    assert comp.hyper_parameters() == [comp.learned.raw]
    total.backward()
    assert comp.learned.raw.grad is not None
    with pytest.raises(ConfigError, match="not both"):
        CompositeLoss({"tv": {"type": "tv"}}, coefficients={"tv": 1.0}, learned={"form": "trico"})
    with pytest.raises(ConfigError, match="loss.learned"):
        CompositeLoss({"tv": {"type": "tv"}}, learned={"shape": "trico"})
