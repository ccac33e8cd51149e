"""The cost-aware upper level (search/extensions/cost.py, docs/cost.md): the hinge and its gradient against
finite differences, its place in a real arch step, a tiny search's cost columns and files, resume,
and random search under ``search.cost.limit``."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from conftest import TINY_RUAS, central_differences, stopped_and_resumed, tiny_searcher
from nas_llv.metrics import count_flops
from nas_llv.registry import HYPERGRADS
from nas_llv.runs import Run
from nas_llv.search.extensions.cost import CostPenalty
from nas_llv.search.loop import Searcher
from nas_llv.space.cost import current_probs, from_csv
from nas_llv.space.genotype import random_choices

SIZE = [32, 24]
TINY = {
    **TINY_RUAS,
    "search": {"epochs": 2, "steps_per_epoch": 1, "val_batches": 1, "checkpoint_every": 1,
               "weights": {"lr": 0.01}, "arch": {"lr": 0.05, "betas": [0.5, 0.999]},
               "hypergrad": {"type": "first_order"}},
}
# GFLOPs at 32x24: the cheapest genotype (all skip) costs about 0.0013, the uniform α about 0.011
TARGET = 0.005


def _searcher(root, seed=0, **search):
    return tiny_searcher(TINY, root, seed, **search)


def _expected(s: Searcher) -> float:
    with torch.no_grad():
        return float(s.extension("cost").table.expected(current_probs(s.net)))


@pytest.fixture
def double_searcher(tmp_path):
    """A searcher with the hinge (target TARGET, weight 2) in float64, α moved off its start."""
    s = _searcher(tmp_path, cost={"size": SIZE, "target": TARGET, "weight": 2.0})
    s.net.double()
    with torch.no_grad():
        for p in s.net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    yield s
    s.close()


def test_the_penalty_is_attached_to_every_level_with_alpha(double_searcher):
    s = double_searcher
    for level in s.levels.values():
        (penalty,) = level.penalties
        assert isinstance(penalty, CostPenalty) and penalty.table is s.extension("cost").table
        assert (penalty.target, penalty.weight) == (TARGET, 2.0)


@pytest.mark.parametrize("target_times, active", [(0.5, True), (2.0, False)])
def test_penalty_value_and_gradient_against_finite_differences(double_searcher, target_times, active):
    """weight · max(0, E/target - 1) with E over the whole network: the scene level's own α move it,
    the task level's α count at their current value (detached)."""
    s = double_searcher
    level = s.levels["scene"]
    target = target_times * _expected(s)
    level.penalties = (CostPenalty(s.extension("cost").table, s.net, target, 2.0),)
    alphas = {name: a.detach().clone().requires_grad_() for name, a in level.upper.items()}

    def penalty(ov: dict[str, torch.Tensor]) -> torch.Tensor:
        return level.penalty(ov)

    value = penalty(alphas)
    assert float(value.detach()) == pytest.approx(2.0 * max(0.0, _expected(s) / target - 1), rel=1e-12)
    assert level.penalty_values == {"cost": pytest.approx(float(value.detach()), rel=1e-12)}
    grads = dict(zip(alphas, torch.autograd.grad(value, list(alphas.values()), allow_unused=True)))
    numeric = central_differences(penalty, {k: v.detach() for k, v in alphas.items()})
    for name, g in grads.items():
        if active:
            torch.testing.assert_close(g, numeric[name], rtol=1e-6, atol=1e-10)
            assert (g != 0).any()
        else:  # below the target the hinge is flat: no pull towards cheap ops for their own sake
            assert float(value.detach()) == 0.0 and (g is None or not g.any()) and not numeric[name].any()


def _arch_grads(level, train_b, val_b, method: str) -> dict[str, torch.Tensor]:
    """The α gradient one real ``arch_step`` applies (an optimizer of lr 0 keeps α and the .grad)."""
    level.arch_opt = torch.optim.SGD(list(level.upper.values()), lr=0.0)
    level.arch_step(HYPERGRADS.build({"type": method}), train_b, val_b)
    return {name: a.grad.clone() for name, a in level.upper.items()}


@pytest.mark.parametrize("method", ["first_order", "finite_difference", "implicit_cg"])
def test_the_arch_step_adds_exactly_the_penalty_gradient(double_searcher, method):
    """The hinge depends on α alone: whatever the hypergradient method does with ω, it adds the
    hinge's own gradient to the upper gradient, no more."""
    s = double_searcher
    level = s.levels["scene"]
    train_b, val_b = s._batch(s.train_data), s._batch(s.val_data)
    train_b = {k: v.double() if torch.is_tensor(v) else v for k, v in train_b.items()}
    val_b = {k: v.double() if torch.is_tensor(v) else v for k, v in val_b.items()}
    before = {n: a.detach().clone() for n, a in level.upper.items()}
    with_penalty = _arch_grads(level, train_b, val_b, method)
    penalty = level.penalty({})
    expected = dict(zip(level.upper, torch.autograd.grad(penalty, list(level.upper.values()))))
    assert float(penalty.detach()) > 0
    level.penalties = ()
    without = _arch_grads(level, train_b, val_b, method)
    for name in level.upper:
        assert torch.equal(level.upper[name].detach(), before[name])
        torch.testing.assert_close(with_penalty[name] - without[name], expected[name], rtol=1e-9, atol=1e-12)
        assert (expected[name].abs() > 1e-6).all()  # far above the tolerance: the check can fail
    # far above the target nothing changes: the hinge is 0 there
    level.penalties = (CostPenalty(s.extension("cost").table, s.net, 10 * _expected(s), 2.0),)
    for name, g in _arch_grads(level, train_b, val_b, method).items():
        torch.testing.assert_close(g, without[name], rtol=0, atol=0)


def test_a_search_with_a_cost_target_writes_its_cost(tmp_path):
    s = _searcher(tmp_path, cost={"size": SIZE, "target": TARGET, "weight": 1.0})
    assert s.run() is True
    run = s.attached_run.dir
    assert (run / "cost_table.csv").read_text() == s.extension("cost").table.to_csv()
    frame = pd.read_csv(run / "trajectory.csv")
    assert frame["cost/expected"].notna().all() and (frame["penalty/cost"] > 0).all()
    # a row's penalty is the hinge at the α before its step: the previous row's expected cost
    hinge = (frame["cost/expected"] / TARGET - 1).clip(lower=0).shift(1)
    assert frame["penalty/cost"][1:].tolist() == pytest.approx(hinge[1:].tolist(), rel=1e-5)
    assert frame["cost/expected"].iloc[-1] == pytest.approx(_expected(s), rel=1e-6)
    geno = yaml.safe_load((run / "genotype.yaml").read_text())
    flops = count_flops(s.genotype().build(), torch.rand(1, 3, SIZE[1], SIZE[0])) / 1e9
    assert geno["meta"]["cost"] == {"type": "flops", "unit": "GFLOPs", "size": "32x24",
                                    "value": pytest.approx(flops, abs=1e-6)}


def test_a_resumed_cost_search_equals_an_uninterrupted_one(tmp_path):
    cost = {"size": SIZE, "target": TARGET, "weight": 1.0}
    a = _searcher(tmp_path / "a", cost=cost)
    assert a.run() is True
    run = stopped_and_resumed(_searcher(tmp_path / "b", cost=cost), stop_after=2).attached_run
    frames = [pd.read_csv(d / "trajectory.csv").drop(columns=["seconds"]) for d in (a.attached_run.dir, run.dir)]
    pd.testing.assert_frame_equal(*frames)
    for name in ("genotype.yaml", "cost_table.csv"):
        ours, theirs = ((d / name).read_text() for d in (a.attached_run.dir, run.dir))
        assert ours.replace(a.attached_run.dir.name, "") == theirs.replace(run.dir.name, "")


def test_a_resumed_search_keeps_the_checkpoints_cost_table(tmp_path):
    """The numbers the run started with (latency would differ if measured again), also in the penalty."""
    b = _searcher(tmp_path, cost={"size": SIZE, "target": TARGET})
    written = (b.attached_run.dir / "cost_table.csv").read_text()  # on attaching: a stopped run has it too
    assert written == b.extension("cost").table.to_csv()
    assert b.run(stop_after=2) is False
    b.attached_run.close()
    state = b.attached_run.load_checkpoint()
    doubled = from_csv(state["cost_table"], "flops")
    doubled.costs = {label: {op: 2 * v for op, v in ops.items()} for label, ops in doubled.costs.items()}
    state["cost_table"] = doubled.to_csv()
    c = Searcher(b.recipe)
    c.attach(Run.open(b.attached_run.dir))
    assert (b.attached_run.dir / "cost_table.csv").read_text() == written  # attaching again keeps the file
    c.load_state_dict(state)
    assert c.extension("cost").table.costs == doubled.costs
    assert all(level.penalties[0].table is c.extension("cost").table for level in c.levels.values())
    c.close()


def _random(root, seed=0, **cost) -> Searcher:
    return _searcher(root, seed, strategy="random", epochs=3, cost={"size": SIZE, **cost})


def test_random_search_draws_only_under_the_limit_and_stays_seeded(tmp_path):
    free = _random(tmp_path / "free")
    table = free.extension("cost").table
    dearest = table.fixed + sum(max(c.values()) for c in table.costs.values())
    limit = (table.cheapest() + dearest) / 2
    labels = {label: tuple(ops) for label, ops in table.costs.items()}
    unconstrained = [random_choices(labels, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(table.of(d) > limit for d in unconstrained)  # the limit bites
    a, b, c = (_random(tmp_path / n, seed, limit=limit) for n, seed in (("a", 0), ("b", 0), ("c", 1)))
    assert a.strategy.samples == b.strategy.samples != c.strategy.samples
    assert all(table.of(d) <= limit for s in (a, c) for d in s.strategy.samples)
    assert a.run() is True
    run = a.attached_run.dir
    candidates = pd.read_csv(run / "candidates.csv")
    assert (candidates["cost"] <= limit).all() and len(candidates) == 3
    assert candidates["cost"].tolist() == [table.of(d) for d in a.strategy.samples]
    geno = yaml.safe_load((run / "genotype.yaml").read_text())
    best = candidates.loc[candidates["val_loss"].idxmin()]
    assert geno["meta"]["cost"]["value"] == pytest.approx(best["cost"], abs=1e-6)
    for s in (free, b, c):
        s.close()


def test_an_early_stopped_genotype_records_its_own_cost(tmp_path, monkeypatch):
    """DARTS-ES writes an earlier architecture into genotype.yaml: the meta's cost is of that one."""
    from nas_llv.search.extensions import hessian

    monkeypatch.setattr(hessian, "level_eigenvalue", lambda level, batch, cfg, generator: float(
        generator.initial_seed() % 1_000_003))  # a steady rise: stops after epoch 2
    monkeypatch.setattr(hessian, "genotype_of", lambda net, snapshot: {label: "skip" for label in s.extension("cost").table.costs})
    s = _searcher(tmp_path, epochs=4, cost={"size": SIZE},
                  hessian={"every": 1, "early_stop": {"window": 1, "ratio": 0.75}})
    assert s.run() is True and s.extension("hessian").tracker.stopped is not None
    geno = yaml.safe_load((s.attached_run.dir / "genotype.yaml").read_text())
    assert set(geno["genotype"].values()) == {"skip"}
    assert geno["meta"]["cost"]["value"] == pytest.approx(s.extension("cost").table.cheapest(), abs=1e-6)
