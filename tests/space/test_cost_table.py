"""The cost table (space/cost.py): its expected cost at a one-hot α is the derived network's FLOPs,
its gradient in α is the finite differences', the latency kind, the csv round trip, draws under a limit."""
from __future__ import annotations

import functools

import pytest
import torch

from conftest import central_differences
from nas_llv.config import ConfigError
from nas_llv.metrics import count_flops
from nas_llv.space.cost import CostTable, current_probs, draw_under, from_csv, measure
from nas_llv.space.genotype import Genotype, random_choices
from nas_llv.space.models import build_search_network
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import arch_modules, set_one_hot

SIZE = (32, 24)  # width, height
NETWORK = {"type": "ruas"}


@functools.lru_cache(maxsize=None)
def _spaces():
    return {"scene": load_space("ruas_scene"), "denoise": load_space("ruas_denoise")}


def _supernet(relaxation: str = "softmax") -> torch.nn.Module:
    torch.manual_seed(0)
    return build_search_network(NETWORK, _spaces(), False, relaxation).net


def _labels(net) -> dict[str, tuple[str, ...]]:
    return {label: tuple(names) for arch in arch_modules(net) for label, names in arch.candidates.items()}


@functools.lru_cache(maxsize=None)
def _flops_table() -> CostTable:
    return measure(_supernet(), "flops", SIZE)


def test_labels_follow_the_supernet_and_fixed_is_the_unsearched_part():
    table, net = _flops_table(), _supernet()
    assert {label: tuple(ops) for label, ops in table.costs.items()} == _labels(net)
    assert table.fixed > 0  # the noise estimator's and the cells' fixed convolutions
    assert all(table.costs[label]["skip"] == 0 for label in table.costs)  # no multiply-adds
    # the 3x3 candidates cost about nine times the 1x1 ones (the padded border aside)
    assert all(c["conv_3x3"] > 8 * c["conv_1x1"] > 0 for c in table.costs.values() if "conv_1x1" in c)


@pytest.mark.parametrize("relaxation", ["softmax", "sigmoid"])
def test_expected_cost_at_one_hot_alpha_is_the_derived_networks_flops(relaxation):
    """E[cost] at α one-hot on a genotype = ``of(genotype)`` = count_flops of its derived network."""
    net, table = _supernet(relaxation).double(), _flops_table()
    generator = torch.Generator().manual_seed(5)
    seen = set()
    for _ in range(4):
        choices = random_choices(_labels(net), generator)
        set_one_hot(net, choices)
        derived = Genotype(NETWORK, _spaces(), choices).build()
        flops = count_flops(derived, torch.rand(1, 3, SIZE[1], SIZE[0])) / 1e9
        assert float(table.expected(current_probs(net))) == pytest.approx(flops, rel=1e-12)
        assert table.of(choices) == pytest.approx(flops, rel=1e-12)
        seen.add(flops)
    assert len(seen) > 1  # genotypes of different cost


def test_cheapest_is_the_all_skip_genotype_and_of_needs_every_label():
    table = _flops_table()
    skips = {label: "skip" for label in table.costs}
    assert table.cheapest() == pytest.approx(table.of(skips)) and table.cheapest() == pytest.approx(table.fixed)
    with pytest.raises(ConfigError, match=r"no choice for \['scene.c1_d'\]"):
        table.of({k: v for k, v in skips.items() if k != "scene.c1_d"})


def test_expected_cost_gradient_matches_finite_differences():
    table = _flops_table()
    generator = torch.Generator().manual_seed(0)
    alphas = {label: torch.randn(len(ops), generator=generator, dtype=torch.float64, requires_grad=True)
              for label, ops in table.costs.items()}

    def expected(a: dict[str, torch.Tensor]) -> torch.Tensor:
        return table.expected({label: torch.softmax(v, 0) for label, v in a.items()})

    grads = dict(zip(alphas, torch.autograd.grad(expected(alphas), list(alphas.values()))))
    numeric = central_differences(expected, {k: v.detach() for k, v in alphas.items()})
    for label, g in grads.items():
        torch.testing.assert_close(g, numeric[label], rtol=1e-6, atol=1e-12)
    # by hand: d/dα_i Σ_j softmax_j c_j = p_i (c_i - E_label[c])
    label, a = next(iter(alphas.items()))
    p, c = torch.softmax(a.detach(), 0), table.vector(label, a)
    torch.testing.assert_close(grads[label], p * (c - p @ c))
    assert (grads[label] != 0).all()  # no trivially zero gradient


def test_latency_table_and_csv_round_trip():
    """A latency table (ms) on a tiny input: every candidate but skip costs time, nothing is fixed;
    the csv written for the run folder reads back exactly."""
    net = _supernet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    table = measure(net, "latency", (16, 16), repeats=2)
    assert table.kind == "latency" and table.fixed == 0.0 and table.size == (16, 16)
    assert set(table.costs) == set(_labels(net))
    assert all(cost > 0 for ops in table.costs.values() for op, cost in ops.items() if op != "skip")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # measuring changed nothing
    again = from_csv(table.to_csv(), "latency")
    assert again == table
    flops = _flops_table()
    assert from_csv(flops.to_csv(), "flops") == flops


def test_draw_under_stays_under_the_limit_and_follows_the_generator():
    table = _flops_table()
    labels = {label: tuple(ops) for label, ops in table.costs.items()}
    dearest = table.fixed + sum(max(c.values()) for c in table.costs.values())
    limit = (table.cheapest() + dearest) / 2
    draws = [draw_under(table, limit, labels, torch.Generator().manual_seed(s)) for s in range(20)]
    assert all(table.of(d) <= limit for d in draws)
    assert draw_under(table, limit, labels, torch.Generator().manual_seed(3)) == draws[3]
    free = [random_choices(labels, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(table.of(d) > limit for d in free)  # the limit does bite
    with pytest.raises(ConfigError, match="no genotype is that cheap; the cheapest costs"):
        draw_under(table, table.cheapest() * 0.99, labels, torch.Generator())
