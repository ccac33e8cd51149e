"""Hypergradient methods against closed-form answers of small float64 bilevel problems."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from nas_llv.config import ConfigError
from nas_llv.search.hypergrad import Bilevel, apply_upper_grads
from nas_llv.registry import HYPERGRADS

DT = torch.float64
N, M = 5, 3  # dim ω, dim u
XI = 0.1
METHODS = HYPERGRADS.names()  # the contract tests below walk the registry


def build(name: str, **options):
    return HYPERGRADS.build({"type": name, **options})


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


class Quadratic:
    """L_low = ½ωᵀAω - ωᵀBu + ½uᵀCu (+ a non-quadratic term), L_up = ½‖ω-ω0‖² + ½uᵀDu."""

    def __init__(self, dtype=DT, quartic: bool = False, direct: bool = True):
        g = torch.Generator().manual_seed(1)
        r = lambda *s: torch.randn(*s, generator=g, dtype=DT)  # noqa: E731
        m = r(N, N)
        self.A = (m @ m.T / N + torch.eye(N, dtype=DT)).to(dtype)
        self.B, self.E, self.w0 = r(N, M).to(dtype), r(N, M).to(dtype), r(N).to(dtype)
        self.C = (0.5 * torch.eye(M, dtype=DT)).to(dtype)
        self.D = (0.3 * torch.eye(M, dtype=DT) * direct).to(dtype)
        self.u0, self.w_init = r(M).to(dtype), r(N).to(dtype)
        self.quartic = quartic

    def lower_loss(self, t):
        w, u = t["w"], t["u"]
        out = 0.5 * w @ self.A @ w - w @ (self.B @ u) + 0.5 * u @ self.C @ u
        if self.quartic:  # third derivatives ≠ 0, so the finite difference is not exact
            out = out + F.softplus(w * (self.E @ u)).sum() + 0.05 * (w ** 4).sum()
        return out

    def upper_loss(self, t):
        w, u = t["w"], t["u"]
        return 0.5 * ((w - self.w0) ** 2).sum() + 0.5 * u @ self.D @ u

    def w_star(self) -> torch.Tensor:
        return torch.linalg.solve(self.A, self.B @ self.u0)

    def problem(self, w: torch.Tensor | None = None) -> Bilevel:
        w = self.w_init if w is None else w
        return Bilevel({"u": self.u0.clone().requires_grad_()}, {"w": w.clone().requires_grad_()},
                       self.lower_loss, self.upper_loss, XI)

    def unrolled_closed_form(self) -> torch.Tensor:
        w, u = self.w_init, self.u0
        w1 = w - XI * (self.A @ w - self.B @ u)
        return self.D @ u + XI * self.B.T @ (w1 - self.w0)  # dω'/du = ξB

    def implicit_closed_form(self) -> torch.Tensor:
        ws = self.w_star()
        return self.D @ self.u0 + torch.linalg.solve(self.A, self.B).T @ (ws - self.w0)


def reference_implicit(problem: Bilevel) -> torch.Tensor:
    """∇_u L_up - (∇²_{ωu} L_low)ᵀ H⁺ ∇_ω L_up from explicit matrices (single 'u', 'w')."""
    u, w = problem.upper["u"].detach(), problem.lower["w"].detach()
    low = lambda w_, u_: problem.lower_loss({"w": w_, "u": u_})  # noqa: E731
    up = lambda w_, u_: problem.upper_loss({"w": w_, "u": u_})  # noqa: E731
    (h, mixed), _ = torch.autograd.functional.hessian(low, (w, u))  # H_ωω (N, N), H_ωu (N, M)
    gw, gu = torch.autograd.functional.jacobian(up, (w, u))
    return gu - mixed.T @ torch.linalg.pinv(h, hermitian=True) @ gw


# ---------------------------------------------------------------- exact answers

def test_unrolled_exact_matches_closed_form():
    q = Quadratic()
    got = build("unrolled_exact")(q.problem())["u"]
    torch.testing.assert_close(got, q.unrolled_closed_form(), rtol=0, atol=1e-10)


def test_finite_difference_converges_to_unrolled_exact_and_differs_from_first_order():
    q = Quadratic(quartic=True)
    exact = build("unrolled_exact")(q.problem())["u"]
    err = {r: rel(build("finite_difference", r=r)(q.problem())["u"], exact) for r in (1e-2, 1e-3)}
    print(f"finite_difference relative error: r=1e-2 {err[1e-2]:.2e}, r=1e-3 {err[1e-3]:.2e}")
    assert err[1e-2] < 1e-4
    assert 30 < err[1e-2] / err[1e-3] < 300  # central differences: error O(ε²)
    first = build("first_order")(q.problem())["u"]
    assert rel(first, exact) > 1e-2
    assert rel(first, build("finite_difference")(q.problem())["u"]) > 1e-2


def test_first_order_is_the_direct_gradient():
    q = Quadratic()
    torch.testing.assert_close(build("first_order")(q.problem())["u"], q.D @ q.u0, rtol=0, atol=1e-12)


def test_implicit_cg_matches_closed_form_at_lower_optimum():
    q = Quadratic()
    p = q.problem(q.w_star())
    got = build("implicit_cg", tol=1e-12)(p)["u"]
    torch.testing.assert_close(got, q.implicit_closed_form(), rtol=0, atol=1e-6)
    torch.testing.assert_close(reference_implicit(p), q.implicit_closed_form(), rtol=0, atol=1e-10)


def test_implicit_cg_on_non_quadratic_matches_explicit_hessian():
    q = Quadratic(quartic=True)
    p = q.problem()
    got = build("implicit_cg", tol=1e-12)(p)["u"]
    torch.testing.assert_close(got, reference_implicit(p), rtol=0, atol=1e-8)


def test_implicit_gn_is_the_outer_product_formula_and_report_cosine(record_property):
    q = Quadratic()
    ws = q.w_star()
    delta = torch.randn(N, generator=torch.Generator().manual_seed(2), dtype=DT)
    for scale in (1.0, 0.01):
        w = ws + scale * delta
        p = q.problem(w)
        gn = build("implicit_gn")(p)["u"]
        u = q.u0
        g, h, v = q.A @ w - q.B @ u, -q.B.T @ w + q.C @ u, w - q.w0  # by hand
        torch.testing.assert_close(gn, q.D @ u - h * (g @ v) / (g @ g), rtol=1e-12, atol=1e-12)
        exact = build("implicit_cg", tol=1e-12)(p)["u"]
        c_full, c_resp = cosine(gn, exact), cosine(gn - q.D @ u, exact - q.D @ u)
        print(f"implicit_gn on the quadratic, ‖ω-ω*‖={float(w.sub(ws).norm()):.3f}: "
              f"cosine {c_full:.3f} (response term {c_resp:.3f})")
        record_property(f"gn_cosine_quadratic_dist{scale}", c_full)
        record_property(f"gn_cosine_response_quadratic_dist{scale}", c_resp)
    # documented behaviour: near ω* the response flips sign with the side of ω* (∝ 1/‖ω-ω*‖)
    resp = [build("implicit_gn")(q.problem(ws + sign * 0.01 * delta))["u"] - q.D @ q.u0 for sign in (1, -1)]
    assert cosine(*resp) < -0.9


class RankOne:
    """L_low = ½(aᵀω - b(u))², one residual linear in ω: rank-one Hessians, GN exact."""

    def __init__(self):
        g = torch.Generator().manual_seed(3)
        self.a, self.w0, self.c = (torch.randn(n, generator=g, dtype=DT) for n in (N, N, M))
        self.u0, self.w_init = torch.randn(M, generator=g, dtype=DT), torch.randn(N, generator=g, dtype=DT)

    def lower_loss(self, t):
        return 0.5 * (self.a @ t["w"] - self.c @ t["u"] - 0.3 * torch.sin(t["u"]).sum()) ** 2

    def upper_loss(self, t):
        return 0.5 * ((t["w"] - self.w0) ** 2).sum() + 0.25 * (t["u"] ** 4).sum()

    def problem(self) -> Bilevel:
        return Bilevel({"u": self.u0.clone().requires_grad_()}, {"w": self.w_init.clone().requires_grad_()},
                       self.lower_loss, self.upper_loss, XI)


def test_implicit_gn_exact_for_single_residual(record_property):
    r1 = RankOne()
    p = r1.problem()
    gn = build("implicit_gn")(p)["u"]
    exact = reference_implicit(p)  # pseudo-inverse of the rank-one Hessian
    c = cosine(gn, exact)
    print(f"implicit_gn on a single-residual least squares: cosine {c:.12f}")
    record_property("gn_cosine_rank_one", c)
    assert c > 1 - 1e-6
    torch.testing.assert_close(gn, exact, rtol=1e-8, atol=1e-10)


# Each registered method on a small float64 problem where its answer is known exactly: the
# problem, the method's options, and that answer. A new method needs a row here.
EXACT = {
    "first_order": lambda: (Quadratic().problem(), {}, Quadratic().D @ Quadratic().u0),
    "finite_difference": lambda: (Quadratic().problem(), {}, Quadratic().unrolled_closed_form()),  # FD exact on quadratics
    "unrolled_exact": lambda: (Quadratic().problem(), {}, Quadratic().unrolled_closed_form()),
    "implicit_cg": lambda: (Quadratic().problem(Quadratic().w_star()), {"tol": 1e-12}, Quadratic().implicit_closed_form()),
    "implicit_gn": lambda: (RankOne().problem(), {}, reference_implicit(RankOne().problem())),
}


@pytest.mark.parametrize("name", HYPERGRADS.names())
def test_every_method_gives_its_exact_hypergradient_on_a_small_problem(name):
    assert name in EXACT, f"hypergradient method '{name}' has no exact answer in EXACT"
    problem, options, exact = EXACT[name]()
    got = build(name, **options)(problem)["u"]
    assert torch.isfinite(got).all()
    assert rel(got, exact) < 1e-6, f"{name}: relative error {rel(got, exact):.2e}"


def test_implicit_gn_at_exact_stationary_point_returns_direct(caplog):
    a, c, d = torch.ones(N, dtype=DT), torch.ones(M, dtype=DT), torch.arange(M, dtype=DT)
    p = Bilevel({"u": torch.zeros(M, dtype=DT, requires_grad=True)}, {"w": torch.zeros(N, dtype=DT, requires_grad=True)},
                lambda t: 0.5 * (a @ t["w"] - c @ t["u"]) ** 2,  # ∇_ω L_low = 0 exactly at ω = u = 0
                lambda t: 0.5 * ((t["w"] - 1) ** 2).sum() + d @ t["u"], XI)
    with caplog.at_level(logging.WARNING):
        gn = build("implicit_gn")(p)["u"]
    torch.testing.assert_close(gn, d, rtol=0, atol=0)
    assert "0/0" in caplog.text


# ---------------------------------------------------------------- upper loss without direct u

class LossHypers:
    """L_low = ς₁ ½‖ω - a‖² + ς₂ ½‖Pω - b‖², L_up = ½‖ω - ω0‖²: no direct dependence on ς."""

    def __init__(self):
        g = torch.Generator().manual_seed(4)
        self.a, self.w0, self.w_init = (torch.randn(N, generator=g, dtype=DT) for _ in range(3))
        self.P, self.b = torch.randn(4, N, generator=g, dtype=DT), torch.randn(4, generator=g, dtype=DT)
        self.s = torch.tensor([0.7, 1.3], dtype=DT)

    def grads_l(self, w):
        return [w - self.a, self.P.T @ (self.P @ w - self.b)]

    def lower_loss(self, t):
        w, s = t["w"], t["s"]
        return s[0] * 0.5 * ((w - self.a) ** 2).sum() + s[1] * 0.5 * ((self.P @ w - self.b) ** 2).sum()

    def upper_loss(self, t):
        return 0.5 * ((t["w"] - self.w0) ** 2).sum()

    def hessian(self):
        return self.s[0] * torch.eye(N, dtype=DT) + self.s[1] * self.P.T @ self.P

    def w_star(self):
        return torch.linalg.solve(self.hessian(), self.s[0] * self.a + self.s[1] * self.P.T @ self.b)

    def problem(self, w=None) -> Bilevel:
        w = self.w_init if w is None else w
        return Bilevel({"s": self.s.clone().requires_grad_()}, {"w": w.clone().requires_grad_()},
                       self.lower_loss, self.upper_loss, XI)


def test_no_direct_dependence_gives_indirect_term_only():
    lw = LossHypers()
    w = lw.w_init
    assert torch.equal(build("first_order")(lw.problem())["s"], torch.zeros(2, dtype=DT))
    w1 = w - XI * (lw.s[0] * lw.grads_l(w)[0] + lw.s[1] * lw.grads_l(w)[1])
    unrolled = torch.stack([-XI * gi @ (w1 - lw.w0) for gi in lw.grads_l(w)])
    torch.testing.assert_close(build("unrolled_exact")(lw.problem())["s"], unrolled, rtol=0, atol=1e-12)
    assert rel(build("finite_difference")(lw.problem())["s"], unrolled) < 1e-4
    ws = lw.w_star()
    implicit = torch.stack([-(ws - lw.w0) @ torch.linalg.solve(lw.hessian(), gi) for gi in lw.grads_l(ws)])
    torch.testing.assert_close(build("implicit_cg", tol=1e-12)(lw.problem(ws))["s"], implicit, rtol=0, atol=1e-8)
    gn = build("implicit_gn")(lw.problem())["s"]
    h = torch.stack([0.5 * ((w - lw.a) ** 2).sum(), 0.5 * ((lw.P @ w - lw.b) ** 2).sum()])
    assert abs(cosine(gn, h)) > 1 - 1e-12  # along -∇_ς L_low


# ---------------------------------------------------------------- contracts

@pytest.mark.parametrize("name", METHODS)
def test_lower_unchanged_and_no_grad_written(name):
    q = Quadratic(quartic=True)
    p = q.problem()
    before = {k: v.detach().clone() for k, v in {**p.upper, **p.lower}.items()}
    out = build(name)(p)
    assert set(out) == {"u"} and out["u"].shape == p.upper["u"].shape and not out["u"].requires_grad
    for k, v in {**p.upper, **p.lower}.items():
        assert torch.equal(v, before[k]), k
        assert v.grad is None, k


@pytest.mark.parametrize("name", METHODS)
def test_named_tensors_of_any_shape(name):
    """Splitting ω and u into several named tensors of other shapes gives the same hypergradient."""
    q = Quadratic(quartic=True)
    whole = build(name)(q.problem())["u"]

    def join(t):
        return {"w": torch.cat([t["w.a"].flatten(), t["w.b"].flatten()]),
                "u": torch.cat([t["u.a"].flatten(), t["u.b"].flatten()])}

    w, u = q.w_init, q.u0
    p = Bilevel({"u.a": u[:2].clone().requires_grad_(), "u.b": u[2:].reshape(1, 1).clone().requires_grad_()},
                {"w.a": w[:3].reshape(3, 1).clone().requires_grad_(), "w.b": w[3:].clone().requires_grad_()},
                lambda t: q.lower_loss(join(t)), lambda t: q.upper_loss(join(t)), XI)
    out = build(name)(p)
    assert out["u.b"].shape == (1, 1)
    torch.testing.assert_close(torch.cat([out["u.a"], out["u.b"].flatten()]), whole, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
def test_float32_agrees_with_float64(name):
    ref = build(name)(Quadratic(quartic=True).problem())["u"]
    got = build(name)(Quadratic(dtype=torch.float32, quartic=True).problem())["u"]
    assert got.dtype == torch.float32
    assert rel(got.double(), ref) < 1e-3


@pytest.mark.parametrize("name, low_calls", [("first_order", 0), ("finite_difference", 3),
                                              ("unrolled_exact", 1), ("implicit_cg", 1), ("implicit_gn", 1)])
def test_loss_evaluations_as_documented(name, low_calls):
    q = Quadratic(quartic=True)
    calls = {"low": 0, "up": 0}

    def count(kind, fn):
        def wrapped(t):
            calls[kind] += 1
            return fn(t)
        return wrapped

    p = q.problem()
    build(name)(Bilevel(p.upper, p.lower, count("low", q.lower_loss), count("up", q.upper_loss), XI))
    assert calls == {"low": low_calls, "up": 1}


def test_implicit_cg_reports_negative_curvature(caplog):
    p = Bilevel({"u": torch.ones(2, dtype=DT, requires_grad=True)}, {"w": torch.ones(2, dtype=DT, requires_grad=True)},
                lambda t: -0.5 * (t["w"] ** 2).sum() + t["w"] @ t["u"], lambda t: (t["w"] ** 2).sum(), XI)
    method = build("implicit_cg")
    with caplog.at_level(logging.WARNING):
        out = method(p)["u"]
    assert torch.isfinite(out).all() and method.info["curvature_ok"] == 0.0
    assert "curvature" in caplog.text
    # damping 2 makes H + 2I = I: q = v = 2ω, mixed = ∇_u (ωᵀq)... = q
    torch.testing.assert_close(build("implicit_cg", damping=2.0)(p)["u"], -2 * torch.ones(2, dtype=DT))


class TinyMixed(torch.nn.Module):
    """softmax(α)-weighted sum of two convolutions: a one-edge supernet."""

    def __init__(self):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
        self.c3, self.c1 = torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        a = torch.softmax(self.alpha, 0)
        return a[0] * torch.tanh(self.c3(x)) + a[1] * self.c1(x)


def test_methods_with_functional_call_on_a_module():
    """The strategies' usage: losses via functional_call on fixed batches, α upper, weights lower."""
    torch.manual_seed(0)
    net = TinyMixed().double()
    train, val = torch.rand(2, 2, 3, 8, 8, dtype=DT), torch.rand(2, 2, 3, 8, 8, dtype=DT)

    def loss_on(batch):
        return lambda t: F.mse_loss(torch.func.functional_call(net, dict(t), (batch[0],)), batch[1])

    params = dict(net.named_parameters())
    weights = {k: v for k, v in params.items() if k != "alpha"}
    before = {k: v.detach().clone() for k, v in params.items()}
    p = Bilevel({"alpha": params["alpha"]}, weights, loss_on(train), loss_on(val), 0.5)
    out = {name: build(name)(p)["alpha"] for name in METHODS}
    assert rel(out["finite_difference"], out["unrolled_exact"]) < 1e-3
    assert rel(out["first_order"], out["unrolled_exact"]) > 1e-2
    assert all(torch.isfinite(g).all() and g.shape == (2,) for g in out.values())
    for k, v in params.items():
        assert torch.equal(v, before[k]) and v.grad is None, k


# ---------------------------------------------------------------- registry, options, optimizer

def test_registry_and_options():
    assert set(METHODS) <= set(HYPERGRADS.names())
    for name in METHODS:
        assert build(name).lower_steps >= 1
    m = HYPERGRADS.build({"type": "implicit_cg", "cg_iters": 10, "tol": "1e-8", "damping": 1})
    assert (m.cg_iters, m.tol, m.damping) == (10, 1e-8, 1.0)
    assert build("implicit_gn", lower_steps=5).lower_steps == 5
    with pytest.raises(ConfigError, match="allowed: cg_iters, tol, damping, lower_steps"):
        build("implicit_cg", iters=3)
    with pytest.raises(ConfigError, match="allowed: none"):
        build("first_order", r=0.1)
    with pytest.raises(ConfigError, match="cg_iters=0 must be >= 1"):
        build("implicit_cg", cg_iters=0)
    with pytest.raises(ConfigError, match="expected a number"):
        build("finite_difference", r=True)
    with pytest.raises(ConfigError, match="r=-0.1"):
        build("finite_difference", r=-0.1)


def test_bilevel_rejects_bad_problems():
    t = torch.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="disjoint"):
        Bilevel({"x": t}, {"x": t}, sum, sum, 0.1)
    with pytest.raises(ValueError, match="lower_lr"):
        Bilevel({"x": t}, {"y": t}, sum, sum, -1.0)


def test_apply_upper_grads_sets_grad_for_an_optimizer():
    alpha = torch.nn.Parameter(torch.ones(2, 3, dtype=DT))
    alpha.grad = torch.full_like(alpha, 5.0)  # stale gradient must be replaced, not added to
    g = torch.arange(6, dtype=DT).reshape(2, 3)
    apply_upper_grads({"alpha": alpha}, {"alpha": g})
    torch.testing.assert_close(alpha.grad, g)
    torch.optim.SGD([alpha], lr=0.5).step()
    torch.testing.assert_close(alpha.detach(), 1 - 0.5 * g)
    with pytest.raises(ValueError, match="no gradient for"):
        apply_upper_grads({"alpha": alpha, "beta": alpha}, {"alpha": g})
    with pytest.raises(ValueError, match="shape"):
        apply_upper_grads({"alpha": alpha}, {"alpha": g.T})
