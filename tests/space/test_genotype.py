"""Genotype files (nas_llv.space.genotype): round trip file -> Genotype -> network -> forward for
every shipped space, refused labels, older layouts, variants (the ruas builder's hook), the
output scale and full-size rebuilds."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from nas_llv.config import ConfigError
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.space.genotype import (
    Genotype, declared_labels, genotype_from_dict, genotype_scale, load_genotype, with_variant,
)
from nas_llv.space.spec import SpaceSpec, load_space, shipped_spaces

IMAGE_MODELS = ("ruas_scene", "ruas_denoise", "trico_llsr", "collaba_llsr")  # take the RGB image itself


def _last_choices(network: dict, spaces: dict[str, SpaceSpec]) -> dict[str, str]:
    """A valid genotype: the last candidate of every declared label."""
    return {label: cands[-1] for label, cands in declared_labels(network, spaces).items()}


def _single(name: str) -> Genotype:
    space = load_space(name)
    network = {"type": "single"}
    return Genotype(network, {"net": space}, _last_choices(network, {"net": space}), {"source": "test"})


def _ruas(**network) -> Genotype:
    network = {"type": "ruas", "variant": "ruas", **network}
    spaces = {"scene": load_space("ruas_scene"), "denoise": load_space("ruas_denoise")}
    return Genotype(network, spaces, _last_choices(network, spaces))


def _image(out):
    """The main image: a tensor, or 'x' of a dict (the scene module alone gives its enhanced 'u')."""
    return out if isinstance(out, torch.Tensor) else out.get("x", out.get("u"))


@pytest.mark.parametrize("name", shipped_spaces())
def test_file_round_trip_rebuilds_the_same_network(name, tmp_path):
    geno = _single(name)
    loaded = load_genotype(geno.save(tmp_path / "genotype.yaml"))
    assert loaded == geno  # network, resolved spaces, choices and meta
    net, again = geno.build().eval(), loaded.build().eval()
    again.load_state_dict(net.state_dict())  # same architecture: the weights fit exactly
    space = geno.spaces["net"]
    channels = 3 if space.model["type"] in IMAGE_MODELS else space.cell.channels
    x = torch.rand(1, channels, 16, 16)
    with torch.no_grad():
        out = _image(again(x))
        torch.testing.assert_close(out, _image(net(x)), rtol=0, atol=0)
    scale = genotype_scale(loaded)
    assert out.shape == (1, 3 if space.model["type"] in IMAGE_MODELS else channels, 16 * scale, 16 * scale)


def test_ruas_network_round_trip(tmp_path):
    geno = _ruas(variant="ruas_a", threshold=0.0)
    loaded = load_genotype(geno.save(tmp_path / "genotype.yaml"))
    assert loaded == geno and all(k.startswith(("scene.", "denoise.")) for k in loaded.choices)
    with torch.no_grad():
        out = loaded.build().eval()(torch.rand(2, 3, 16, 16))
    assert out["x"].shape == out["u"].shape == (2, 3, 16, 16) and out["noise"].shape == (2,)


def test_unknown_labels_and_ops_are_refused():
    data = _single("ruas_denoise").to_dict()
    with pytest.raises(ConfigError, match=r"g.yaml: genotype: unknown labels \[c9_x\]; the spaces declare: \[c1_d"):
        genotype_from_dict({**data, "genotype": {**data["genotype"], "c9_x": "conv_3x3"}}, "g.yaml")
    ruas = _ruas().to_dict()  # a multi-module network names its labels with the module's prefix
    with pytest.raises(ConfigError, match=r"unknown labels \[c1_d\]"):
        genotype_from_dict({**ruas, "genotype": {**ruas["genotype"], "c1_d": "skip"}}, "g.yaml")
    with pytest.raises(ConfigError, match="g.yaml: genotype.c1_d: .*conv_9x9"):
        genotype_from_dict({**data, "genotype": {**data["genotype"], "c1_d": "conv_9x9"}}, "g.yaml")


def test_a_file_without_network_key_loads_as_single(tmp_path):
    geno = _single("ruas_denoise")
    data = geno.to_dict()
    del data["network"]  # the layout before multi-module networks
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = load_genotype(path)
    assert loaded.network == {"type": "single"} and loaded.choices == geno.choices
    x = torch.rand(1, 3, 16, 16)
    assert loaded.build()(x).shape == x.shape


# -- variants: the ruas builder's with_variant hook ----------------------------------------------
def test_ruas_s_drops_the_denoiser():
    geno = _ruas(threshold=0.05)
    scene_only = with_variant(geno, "ruas_s", "train.variant")
    assert scene_only.network == {"type": "ruas", "variant": "ruas_s", "threshold": 0.05}
    assert set(scene_only.spaces) == {"scene"} and all(k.startswith("scene.") for k in scene_only.choices)
    assert scene_only.choices == {k: v for k, v in geno.choices.items() if k.startswith("scene.")}
    assert scene_only.build().denoise is None
    gated = with_variant(geno, "ruas_a")
    assert gated.build().estimator is not None and gated.choices == geno.choices


def test_unchanged_variant_is_the_same_genotype():
    geno = _ruas()
    assert with_variant(geno, None) is geno and with_variant(geno, "ruas") is geno


def _searched_as_ruas_s() -> Genotype:
    full = ruas_genotype("cvpr", "ruas")  # a ruas_s search keeps the denoise space but chooses no op in it
    scene = {k: v for k, v in full.choices.items() if k.startswith("scene.")}
    return Genotype({"type": "ruas", "variant": "ruas_s"}, dict(full.spaces), scene)


@pytest.mark.parametrize("geno, variant, message", [
    (_searched_as_ruas_s(), "ruas", "train.variant=ruas needs a denoise module; this genotype chooses no denoiser ops"),
    (_searched_as_ruas_s(), "ruas_a", "chooses no denoiser ops (it was searched as ruas_s)"),
    (ruas_genotype("cvpr", "ruas_s"), "ruas", "train.variant=ruas needs a denoise module"),
    (_ruas(), "ruas_x", "train.variant=ruas_x: unknown RUAS variant; allowed: ruas_s, ruas, ruas_a"),
    (_single("ruas_denoise"), "ruas_s",
     "train.variant=ruas_s: the genotype's network 'single' has no variants; leave train.variant unset"),
])
def test_impossible_variants_are_one_line(geno, variant, message):
    with pytest.raises(ConfigError) as err:
        with_variant(geno, variant, "train.variant")
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_ruas_s_genotype_keeps_itself():
    geno = _searched_as_ruas_s()
    assert with_variant(geno, "ruas_s") is geno


# -- scale and size ------------------------------------------------------------------------------
def test_genotype_scale_reads_the_model_option():
    assert genotype_scale(ruas_genotype("cvpr", "ruas")) == 1
    space = load_space("collaba_llsr")
    bare = {k: v for k, v in space.model.items() if k != "scale"}  # not recorded: the model's default, 2
    geno = ruas_genotype("cvpr", "ruas_s")
    for model, want in ((bare, 2), ({**bare, "scale": 4}, 4), ({**bare, "scale": 1}, 1)):
        spaces = {"llsr": dataclasses.replace(space, model=model)}
        assert genotype_scale(dataclasses.replace(geno, spaces=spaces)) == want


def test_full_size_rebuild(tmp_path):
    geno = load_genotype(_single("ruas_denoise").save(tmp_path / "g.yaml"))
    small, big = geno.build(), geno.build(channels=16, repeat=5)
    assert len(big.blocks) == 5 and big.stem.out_channels == 16
    x = torch.rand(1, 3, 16, 16)
    assert big(x).shape == small(x).shape == x.shape
    ruas = _ruas()
    net = ruas.build(channels={"denoise": 8}, repeat={"denoise": 2})  # per module: the scene stays as searched
    assert net.denoise.stem.out_channels == 8 and len(net.denoise.blocks) == 2
    assert len(net.scene.stages) == ruas.spaces["scene"].repeat


def test_describe_names_the_network_in_words():
    geno = ruas_genotype("cvpr", "ruas")
    assert geno.describe() == ("ruas (variant ruas): scene ruas_scene at 3 channels x 3, "
                               "denoise ruas_denoise at 6 channels x 3")
    assert "denoise ruas_denoise at 16 channels x 5" in geno.describe(channels={"denoise": 16}, repeat={"denoise": 5})
