from __future__ import annotations

import pytest
import torch

from nas_llv.space import nni_bridge
from nas_llv.space.genotype import Genotype, load_genotype
from nas_llv.space.models import build_fixed_network, build_search_network, build_supernet
from nas_llv.space.spec import load_space, shipped_spaces
from nas_llv.space.supernet import (
    arch_parameters, derived_state_dict, genotype_of, set_one_hot, weight_parameters,
)

EDGES = ["c1_d", "c1_r", "c2_d", "c2_r", "c3_d", "c3_r", "c4"]
CVPR_SCENE = dict(zip(EDGES, ["skip", "resconv_1x1", "resdilconv_3x3", "conv_3x3", "conv_3x3", "skip", "conv_3x3"]))
CVPR_DENOISE = dict(zip(EDGES, ["resconv_1x1", "resconv_1x1", "resdilconv_3x3", "skip", "resconv_1x1", "resconv_1x1", "skip"]))


def _input(space, size=16):
    image_models = ("ruas_scene", "ruas_denoise", "trico_llsr", "collaba_llsr")
    channels = 3 if space.model["type"] in image_models else space.cell.channels
    return torch.rand(2, channels, size, size, dtype=torch.float64)


def _main(out):
    if isinstance(out, dict):
        return out["x"] if "x" in out else out["u"]  # SR models return the output as 'x'
    return out


@pytest.mark.parametrize("name", shipped_spaces())
def test_round_trip_space_supernet_genotype_fixed(name, tmp_path):
    space = load_space(name)
    supernet = build_supernet(space).double()
    with torch.no_grad():
        for a in arch_parameters(supernet):
            a.normal_()  # arbitrary alphas
    geno = genotype_of(supernet)
    assert set(geno) == set(space.labels()) == set(nni_bridge.labels(supernet))
    path = Genotype({"type": "single"}, {"net": space}, geno).save(tmp_path / "genotype.yaml")
    loaded = load_genotype(path)
    assert loaded.choices == geno
    fixed = loaded.build().double()
    fixed.load_state_dict(derived_state_dict(supernet.net, geno))
    set_one_hot(supernet, geno)
    x = _input(space)
    torch.testing.assert_close(_main(fixed(x)), _main(supernet(x)), rtol=1e-9, atol=1e-9)
    frozen = nni_bridge.freeze(supernet, geno)  # NNI's own freeze agrees
    torch.testing.assert_close(_main(frozen(x)), _main(fixed(x)))


def test_arch_params_are_apart_from_weights():
    supernet = build_supernet(load_space("ruas_scene"))
    alphas, weights = arch_parameters(supernet), weight_parameters(supernet)
    assert len(alphas) == 7 and all(a.shape == (7,) for a in alphas)
    assert not {id(p) for p in alphas} & {id(p) for p in weights}
    assert len(alphas) + len(weights) == len(list(supernet.parameters()))


def test_shared_labels_share_one_alpha_across_stages():
    supernet = build_supernet(load_space("ruas_scene"))
    stages = supernet.net.stages
    assert stages[0].edges["c1_d"]._arch is stages[2].edges["c1_d"]._arch
    assert stages[0].edges["c1_d"].choice["conv_3x3"].op.weight is not stages[2].edges["c1_d"].choice["conv_3x3"].op.weight


def test_cvpr_genotype_parameter_counts():
    scene, denoise = load_space("ruas_scene"), load_space("ruas_denoise")
    spaces = {"scene": scene, "denoise": denoise}
    geno = {**{f"scene.{k}": v for k, v in CVPR_SCENE.items()}, **{f"denoise.{k}": v for k, v in CVPR_DENOISE.items()}}
    net = build_fixed_network({"type": "ruas", "variant": "ruas"}, spaces, geno)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(net.scene) == 1161
    assert count(net.denoise) == 2277
    assert count(net) == 3438


def test_search_network_labels_are_prefixed_per_module():
    spaces = {"scene": load_space("ruas_scene"), "denoise": load_space("ruas_denoise")}
    net = build_search_network({"type": "ruas", "variant": "ruas"}, spaces)
    labels = nni_bridge.labels(net)
    assert len(labels) == 14 and "scene.c1_d" in labels and "denoise.c1_d" in labels
    out = net(torch.rand(1, 3, 16, 16))
    assert out["x"].shape == (1, 3, 16, 16)


def test_plain_choices_build_the_same_supernet_without_nni_bookkeeping():
    from nas_llv.space.models import build_searchable, build_supernet

    space = load_space("ruas_denoise")
    plain = nni_bridge.plain(lambda: build_searchable(space))
    full = build_supernet(space).net
    assert [(n, p.shape) for n, p in plain.named_parameters()] == [(n, p.shape) for n, p in full.named_parameters()]
    edges = [m for m in plain.modules() if isinstance(m, nni_bridge.PlainChoice)]
    assert edges and all(nni_bridge.is_choice(m) for m in edges)


def _old_names(state):
    """``state`` as files written before the rename spell it: a cell's ``concat_proj.`` was ``fuse.``."""
    return {k.replace(".concat_proj.", ".fuse."): v for k, v in state.items()}


def test_weights_saved_under_the_old_cell_names_load(tmp_path):
    """Checkpoints (``load_state_dict``) and model files (``load_model``) written when a cell's 1x1
    projection of the concatenation was ``Cell.fuse`` load into ``Cell.concat_proj``."""
    from nas_llv.export.modelfile import load_model, save_model
    from nas_llv.export.ruas_import import ruas_genotype

    source = ruas_genotype("cvpr").build()
    old = _old_names(source.state_dict())
    assert "scene.stages.0.fuse.out.weight" in old
    net = ruas_genotype("cvpr").build()
    net.load_state_dict(old)  # strict
    torch.testing.assert_close(net.scene.stages[0].concat_proj["out"].weight, old["scene.stages.0.fuse.out.weight"])
    path = save_model(tmp_path / "model.pt", ruas_genotype("cvpr"), source)
    data = torch.load(path, weights_only=True)
    torch.save({**data, "state_dict": _old_names(data["state_dict"])}, path)
    loaded, _ = load_model(path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
