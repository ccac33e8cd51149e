"""FairDARTS' sigmoid relaxation in ArchParams, and the merged mixed edges under it (still exact)."""
from __future__ import annotations

import math

import pytest
import torch

from conftest import assert_same_output_and_grads
from nas_llv.config import ConfigError
from nas_llv.space.models import build_supernet
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import (
    ArchParams, MixedEdge, arch_parameters, genotype_of, probs_of, set_all, set_one_hot,
)

ALPHA = [0.0, 2.0, -1.0]


def _arch(relaxation: str) -> ArchParams:
    arch = ArchParams(relaxation)
    arch.add("e", ("conv_1x1", "conv_3x3", "skip"))
    with torch.no_grad():
        arch["e"].copy_(torch.tensor(ALPHA))
    return arch


def test_sigmoid_weights_each_op_on_its_own():
    arch = _arch("sigmoid")
    want = [1 / (1 + math.exp(-a)) for a in ALPHA]  # 0.5, 0.8808, 0.2689: no sum to 1
    torch.testing.assert_close(arch.prob("e"), torch.tensor(want))
    assert probs_of(arch)["e"] == pytest.approx(dict(zip(("conv_1x1", "conv_3x3", "skip"), want)))
    override = torch.tensor([3.0, 0.0, 0.0])
    torch.testing.assert_close(arch.prob("e", override), torch.sigmoid(override))
    assert genotype_of(arch) == {"e": "conv_3x3"}


def test_softmax_stays_the_default():
    arch = _arch("softmax")
    e = [math.exp(a) for a in ALPHA]
    torch.testing.assert_close(arch.prob("e"), torch.tensor([v / sum(e) for v in e]))
    assert ArchParams().relaxation == "softmax"


def test_a_supernet_built_for_sigmoid_starts_near_one_over_n_and_unknown_names_are_refused():
    """σ(α_i) starts near 1/n, where softmax weights start (docs/remedies.md: why not FairDARTS' 0.5)."""
    net = build_supernet(load_space("ruas_scene"), relaxation="sigmoid").net
    assert {m.relaxation for m in net.modules() if isinstance(m, ArchParams)} == {"sigmoid"}
    for ops in probs_of(net).values():
        assert list(ops.values()) == pytest.approx([1 / len(ops)] * len(ops), abs=1e-3)
    with pytest.raises(ConfigError, match="relaxation 'tanh' is unknown; allowed: softmax, sigmoid"):
        ArchParams("tanh")


def test_one_hot_alphas_are_one_hot_under_sigmoid_too():
    arch = _arch("sigmoid")
    set_one_hot(arch, {"e": "skip"})
    assert arch.prob("e").tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("space", ["ruas_scene", "ruas_denoise"])
def test_merged_edges_are_exact_with_sigmoid_weights(space):
    """The merged path (merged kernels, edges of one source together) against the plain weighted
    sum Σ σ(α_i) op_i(x): the same output and gradients to every weight and α."""
    torch.manual_seed(0)
    net = build_supernet(load_space(space), relaxation="sigmoid").double()
    for a in arch_parameters(net):
        a.data.normal_()
    edges = [m for m in net.modules() if isinstance(m, MixedEdge)]
    assert all(e.merge for e in edges)
    assert abs(sum(probs_of(net)[edges[0].label].values()) - 1) > 0.1  # weights that softmax could not give
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    params = list(net.parameters()) + arch_parameters(net)

    def run(merge: bool):
        set_all(net, MixedEdge, merge=merge)
        out = net(x)
        y = out["u"] if isinstance(out, dict) else out
        return y, torch.autograd.grad(y.square().sum(), params, allow_unused=True)

    assert_same_output_and_grads(run(True), run(False))
