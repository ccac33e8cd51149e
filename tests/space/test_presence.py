"""The denoiser's presence as a choice (search_spaces/ruas_denoise_capacity.yaml, issue 26 item 4):
space -> supernet -> genotype.yaml -> derived net -> forward at both choices; its cost (the whole
module gated by w_denoiser) against the derived net's counted FLOPs; the hinge's pull on it."""
from __future__ import annotations

import functools

import pytest
import torch

from conftest import central_differences
from nas_llv.metrics import count_flops
from nas_llv.search.extensions.cost import CostPenalty
from nas_llv.space.cost import CostTable, current_probs, from_csv, measure
from nas_llv.space.genotype import Genotype, load_genotype, random_choices
from nas_llv.space.models import build_search_network
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import arch_modules, derived_state_dict, set_one_hot

SIZE = (32, 24)  # width, height
NETWORK = {"type": "ruas"}
GATE = "denoise.presence"


@functools.lru_cache(maxsize=None)
def _spaces():
    return {"scene": load_space("ruas_scene"), "denoise": load_space("ruas_denoise_capacity")}


def _supernet(dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_search_network(NETWORK, _spaces(), False).net.to(dtype)


def _labels(net) -> dict[str, tuple[str, ...]]:
    return {label: tuple(names) for arch in arch_modules(net) for label, names in arch.candidates.items()}


@functools.lru_cache(maxsize=None)
def _table() -> CostTable:
    return measure(_supernet(torch.float32), "flops", SIZE)


def _genotype(presence: str, seed: int) -> dict[str, str]:
    return {**random_choices(_labels(_supernet()), torch.Generator().manual_seed(seed)), GATE: presence}


def test_the_space_adds_one_presence_label_and_the_default_space_none():
    assert _spaces()["denoise"].labels("denoise.")[GATE] == ("none", "denoiser")
    assert not any("presence" in label for label in load_space("ruas_denoise").labels("denoise."))


@pytest.mark.parametrize("presence", ["none", "denoiser"])
def test_round_trip_to_the_derived_network_at_each_choice(presence, tmp_path):
    net, choices = _supernet(), _genotype(presence, 1)
    path = Genotype(NETWORK, _spaces(), choices).save(tmp_path / "genotype.yaml")
    loaded = load_genotype(path)  # the file alone
    assert loaded.choices == choices
    derived = loaded.build().double()
    derived.load_state_dict(derived_state_dict(net, choices))  # strict: no weight missing or left over
    set_one_hot(net, choices)
    y = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = derived(y)
    torch.testing.assert_close(out["x"], net(y)["x"], rtol=1e-9, atol=1e-9)
    has_denoiser = any(k.startswith("denoise.") for k in derived.state_dict())
    assert has_denoiser == (presence == "denoiser")
    if presence == "none":
        assert torch.equal(out["x"], out["u"])  # RUAS_S's output
    else:
        assert not torch.allclose(out["x"], out["u"])


@pytest.mark.parametrize("presence", ["none", "denoiser"])
def test_expected_cost_at_one_hot_alpha_is_the_derived_networks_flops(presence):
    net, table = _supernet(), _table()
    for seed in range(3):
        choices = _genotype(presence, seed)
        dear = {**choices, **{label: "conv_3x3" for label in table.gates[GATE][1]}}
        for genotype in (choices, dear):
            set_one_hot(net, genotype)
            flops = count_flops(Genotype(NETWORK, _spaces(), genotype).build(), torch.rand(1, 3, SIZE[1], SIZE[0])) / 1e9
            assert float(table.expected(current_probs(net))) == pytest.approx(flops, rel=1e-12)
            assert table.of(genotype) == pytest.approx(flops, rel=1e-12)
        # without the denoiser its edges' ops cost nothing
        assert (table.of(dear) == pytest.approx(table.of(choices))) == (presence == "none")


def test_expected_cost_is_linear_in_the_presence_weight_and_its_gradient_exact():
    """E = w_none E[cost | none] + w_denoiser E[cost | denoiser], the other labels at their α;
    and the gradient in every α, the gate's included, is the finite differences'."""
    table = _table()
    generator = torch.Generator().manual_seed(0)
    alphas = {label: torch.randn(len(ops), generator=generator, dtype=torch.float64)
              for label, ops in table.costs.items()}

    def expected(a: dict[str, torch.Tensor], gate: torch.Tensor | None = None) -> torch.Tensor:
        w = {label: torch.softmax(v, 0) for label, v in a.items()}
        return table.expected(w if gate is None else {**w, GATE: gate})

    p = torch.softmax(alphas[GATE], 0)
    one = torch.eye(2, dtype=torch.float64)
    torch.testing.assert_close(expected(alphas), p[0] * expected(alphas, one[0]) + p[1] * expected(alphas, one[1]))
    moved = {**alphas, **{label: alphas[label].flip(0) for label in table.gates[GATE][1]}}
    assert float(expected(moved, one[0])) == pytest.approx(float(expected(alphas, one[0])))  # no denoiser left
    assert float(expected(moved, one[1])) != pytest.approx(float(expected(alphas, one[1])))
    leaves = {k: v.clone().requires_grad_() for k, v in alphas.items()}
    grads = dict(zip(leaves, torch.autograd.grad(expected(leaves), list(leaves.values()))))
    numeric = central_differences(expected, alphas)
    for label, g in grads.items():
        torch.testing.assert_close(g, numeric[label], rtol=1e-6, atol=1e-12)
    assert grads[GATE][0] < 0 < grads[GATE][1]  # more 'none' is cheaper


def test_cheapest_csv_round_trip_and_default_tables_unchanged():
    table = _table()
    assert table.gates[GATE][0] == "denoiser" and set(table.gates[GATE][1]) == {
        label for label in table.costs if label.startswith("denoise.") and label != GATE}
    assert table.cheapest() == pytest.approx(table.of({label: "skip" for label in table.costs} | {GATE: "none"}))
    text = table.to_csv()
    assert text.splitlines()[0].endswith(",within") and "denoise.c4,skip,0.0,32x24,denoise.presence:denoiser" in text
    assert from_csv(text, "flops") == table
    plain = measure(build_search_network(NETWORK, {**_spaces(), "denoise": load_space("ruas_denoise")}, False).net,
                    "flops", SIZE)
    assert plain.gates == {} and plain.to_csv().splitlines()[0] == "label,candidate,cost_GFLOPs,size"


def test_the_hinge_pulls_towards_none_above_the_target_only():
    net, table = _supernet(), _table()
    alpha = {label: a.detach().clone().requires_grad_() for arch in arch_modules(net) for label, a in arch.items()}
    weights = {label: torch.softmax(a, 0) for label, a in alpha.items()}
    dear = float(table.expected(current_probs(net)))
    for target, pulls in ((dear / 2, True), (dear * 2, False)):
        penalty = CostPenalty(table, net, target, weight=1.0)(weights)
        (grad,) = torch.autograd.grad(penalty, alpha[GATE], retain_graph=True)
        assert (grad[0] < 0 < grad[1]) if pulls else torch.equal(grad, torch.zeros_like(grad))
