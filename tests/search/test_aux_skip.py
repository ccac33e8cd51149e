"""DARTS-' auxiliary skip: β·x on every mixed edge, exact in the merged path, decaying per epoch,
absent from derived networks."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nas_llv.search.extensions.aux_skip import AuxSkipConfig, apply_aux_skip, aux_weight
from nas_llv.space import nni_bridge
from nas_llv.space.genotype import Genotype
from nas_llv.space.models import build_supernet
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import (
    ArchParams, Cell, MixedEdge, arch_parameters, derived_state_dict, genotype_of, set_all, set_one_hot,
)
from conftest import assert_same_output_and_grads

NAMES = ("conv_1x1", "conv_3x3", "resconv_1x1", "dilconv_3x3_d2", "skip")


def _edge(merge: bool) -> MixedEdge:
    torch.manual_seed(0)
    arch = ArchParams()
    edge = nni_bridge.plain(lambda: MixedEdge("e", NAMES, 4, arch, merge=merge)).double()
    arch.double()
    with torch.no_grad():
        arch["e"].normal_()
    object.__setattr__(edge, "arch_for_test", arch)
    return edge


def _output_and_grads(edge: MixedEdge, x: torch.Tensor, identity: float, extra: float = 0.0):
    y = edge(x, identity) + extra * x
    leaves = [x, edge.arch_for_test["e"], *edge.parameters()]
    return y, torch.autograd.grad((y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum(), leaves)


@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("identity", [0.0, 1.0])
def test_aux_skip_adds_beta_x_to_the_mixed_edge(merge, identity):
    edge = _edge(merge)
    assert edge.merge == merge
    x = torch.rand(2, 4, 16, 16, dtype=torch.float64, requires_grad=True)
    plain, plain_grads = _output_and_grads(edge, x, identity, extra=0.3)
    edge.aux_skip = 0.3
    aux, aux_grads = _output_and_grads(edge, x, identity)
    torch.testing.assert_close(aux, plain)
    for a, b in zip(aux_grads, plain_grads):
        torch.testing.assert_close(a, b)
    edge.aux_skip = 0.0
    assert not torch.allclose(edge(x, identity), aux)  # β·x is not small next to the output


@pytest.mark.parametrize("space", ["ruas_scene", "ruas_denoise"])
def test_merged_cells_with_aux_skip_equal_the_unmerged_sum(space):
    """Residual nodes (``Cell._residual``) and edges run together (``run_together``) fold β into the
    merged kernel; the unmerged path adds β·x: outputs and gradients agree."""
    torch.manual_seed(0)
    net = build_supernet(load_space(space)).double()
    for a in arch_parameters(net):
        a.data.normal_()
    set_all(net, MixedEdge, aux_skip=0.4)
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    params = list(net.parameters()) + arch_parameters(net)

    def run(merged: bool):
        set_all(net, MixedEdge, merge=merged)
        set_all(net, Cell, join=merged)
        out = net(x)
        y = out["u"] if isinstance(out, dict) else out
        return y, torch.autograd.grad(y.square().sum(), params, allow_unused=True)

    assert any(c.joint for c in net.modules() if isinstance(c, Cell))
    assert_same_output_and_grads(run(True), run(False))


def test_the_weight_decays_linearly_per_epoch_to_zero():
    cfg = AuxSkipConfig(weight=1.0)
    assert [aux_weight(cfg, e, 4) for e in (0, 2, 3, 4)] == [1.0, 0.5, 0.25, 0.0]
    assert aux_weight(AuxSkipConfig(weight=0.5), 1, 2) == 0.25
    net = nn.Sequential(_edge(True), _edge(False))
    apply_aux_skip(net, cfg, 1, 4)
    beta = net[0].aux_skip
    assert [float(m.aux_skip) for m in net] == [0.75, 0.75]
    apply_aux_skip(net, None, 3, 4)  # off: left as it was
    assert [float(m.aux_skip) for m in net] == [0.75, 0.75]
    apply_aux_skip(net, cfg, 2, 4)  # one tensor for every edge, filled in place (a compiled forward's input)
    assert all(m.aux_skip is beta for m in net) and float(beta) == 0.5


def test_the_derived_network_has_no_aux_skip(tmp_path):
    """A genotype and the weights derived from a supernet with the skip on build the network of the
    chosen ops alone: it equals the supernet one-hot on the genotype with β = 0, not with β > 0."""
    space = load_space("ruas_denoise")
    supernet = build_supernet(space).double()
    with torch.no_grad():
        for a in arch_parameters(supernet):
            a.normal_()
    set_all(supernet, MixedEdge, aux_skip=0.5)
    geno = genotype_of(supernet)
    fixed = Genotype({"type": "single"}, {"net": space}, geno).build().double()
    fixed.load_state_dict(derived_state_dict(supernet.net, geno))
    assert not any(isinstance(m, MixedEdge) or hasattr(m, "aux_skip") for m in fixed.modules())
    set_one_hot(supernet, geno)
    x = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    with_aux = supernet(x)
    set_all(supernet, MixedEdge, aux_skip=0.0)
    torch.testing.assert_close(fixed(x), supernet(x), rtol=1e-9, atol=1e-9)
    assert not torch.allclose(fixed(x), with_aux)
