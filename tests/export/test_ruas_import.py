from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.export.modelfile import load_model, save_model
from nas_llv.export.ruas_import import (
    DENOISE, EDGES, SCENE, detect_release, from_ruas_keys, import_ruas, read_weights, ruas_genotype, to_ruas_keys,
)

BRIEF_SCENE = ["skip", "resconv_1x1", "resdilconv_3x3_d2", "conv_3x3", "conv_3x3", "skip", "conv_3x3"]
BRIEF_CVPR_DENOISE = ["resconv_1x1", "resconv_1x1", "resdilconv_3x3_d2", "skip", "resconv_1x1", "resconv_1x1", "skip"]


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _assert_matches_reference(out_dir, ref_dir):
    refs = sorted(ref_dir.glob("*.png"))
    assert len(refs) == 5
    for ref in refs:
        diff = np.abs(_pixels(out_dir / ref.name) - _pixels(ref))
        assert diff.max() <= 1, f"{ref.name}: off by {diff.max()} levels"
        assert (diff > 0).mean() < 1e-3  # same maths: only rare rounding-order differences


def test_cvpr_lol_enhance_reproduces_the_authors_outputs(shared_data, tmp_path):
    model = tmp_path / "lol.pt"
    assert main(["import-ruas", str(shared_data / "ruas_cvpr_weights/lol.pt"), "-o", str(model)]) == 0
    out = tmp_path / "out"
    assert main(["enhance", str(model), str(shared_data / "mit5/low"), str(out), "--save", "truncate",
                 "--device", "cpu", "-q"]) == 0
    _assert_matches_reference(out, shared_data / "ruas_cvpr_reference/lol_on_mit5")


def test_cvpr_upe_scene_output_reproduces_the_authors_outputs(shared_data, tmp_path):
    net, genotype, extra = import_ruas(shared_data / "ruas_cvpr_weights/upe.pt")
    model = save_model(tmp_path / "run" / "model.pt", genotype, net, extra=extra)
    out = tmp_path / "out"  # the authors save u_list[-2] for upe: the scene module's output
    assert main(["enhance", str(model.parent), str(shared_data / "mit5/low"), str(out), "--output", "u",
                 "--save", "truncate", "-q"]) == 0
    _assert_matches_reference(out, shared_data / "ruas_cvpr_reference/upe_on_mit5")


def test_cvpr_import_architecture_and_parameter_count(shared_data):
    net, genotype, extra = import_ruas(shared_data / "ruas_cvpr_weights/lol.pt")
    assert extra["release"] == "cvpr" and genotype.network == {"type": "ruas", "variant": "ruas"}
    assert [genotype.choices[f"scene.{e}"] for e in EDGES] == BRIEF_SCENE
    assert [genotype.choices[f"denoise.{e}"] for e in EDGES] == BRIEF_CVPR_DENOISE
    assert genotype.spaces["scene"].model["t_min"] == 1e-3  # the CVPR code clamps t to [0.001, 1]
    assert sum(p.numel() for p in net.parameters()) == 3438
    assert sum(p.numel() for p in net.scene.parameters()) == 1161
    raw = read_weights(shared_data / "ruas_cvpr_weights/lol.pt")
    ours = net.state_dict()
    torch.testing.assert_close(ours["scene.stages.2.concat_proj.out.weight"], raw["enhance_net.iems.2.cell.c5.weight"])
    assert to_ruas_keys(from_ruas_keys(raw)).keys() == raw.keys()


def test_cvpr_denoiser_alone_and_wrong_variant(shared_data):
    net, genotype, _ = import_ruas(shared_data / "ruas_cvpr_weights/denoise.pt")
    assert genotype.network == {"type": "single"} and sum(p.numel() for p in net.parameters()) == 2277
    assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    with pytest.raises(ConfigError, match="ruas_a needs the TPAMI noise estimator"):
        import_ruas(shared_data / "ruas_cvpr_weights/lol.pt", variant="ruas_a")
    with pytest.raises(ConfigError, match="do not fit the RUAS TPAMI"):
        import_ruas(shared_data / "ruas_cvpr_weights/lol.pt", release="tpami")


# --- an independent, functional transcription of the authors' forward pass (public code) ---

def _ref_edge(sd, prefix, op, x):
    if op == "skip":
        return x
    w, b = sd[f"{prefix}.op.weight"], sd[f"{prefix}.op.bias"]
    d = 2 if "dil" in op else 1
    y = F.conv2d(x, w, b, padding=d * (w.shape[-1] - 1) // 2, dilation=d)
    return y + x if op.startswith("res") else y


def _ref_cell(sd, p, ops, x):
    act = lambda v: F.leaky_relu(v, 0.05)  # noqa: E731
    e = lambda i, v: _ref_edge(sd, f"{p}.{EDGES[i]}", ops[i], v)  # noqa: E731
    d1, r1 = act(e(0, x)), act(e(1, x) + x)
    d2, r2 = act(e(2, r1)), act(e(3, r1) + r1)
    d3, r3 = act(e(4, r2)), act(e(5, r2) + r2)
    r4 = act(e(6, r3))
    return F.conv2d(torch.cat([d1, d2, d3, r4], 1), sd[f"{p}.c5.weight"], sd[f"{p}.c5.bias"])


def _ref_max(x):
    x = F.pad(x, (1, 1, 1, 1))[:, :, 1:, 1:]
    x = torch.max(x[:, :, :-1, :], x[:, :, 1:, :])
    return torch.max(x[:, :, :, :-1], x[:, :, :, 1:])


def _ref_forward(sd, y, release, threshold=0.035):
    """The authors' Network.forward: (saved image, noise level or None)."""
    u = torch.ones_like(y)
    for k in range(3):
        t_hat = _ref_max(y) if k == 0 else _ref_max(u) - 0.5 * (u - y)
        t = torch.sigmoid(_ref_cell(sd, f"enhance_net.iems.{k}.cell", SCENE, t_hat))
        t = torch.clamp(t, 0.001 if release == "cvpr" else 0.0001, 1.0)
        u = torch.clamp(y / t, 0.0, 1.0)
    noise = None
    if release == "tpami":
        es = u
        for i in (0, 2, 4, 6, 8):
            es = F.conv2d(es, sd[f"estimation.estimation.{i}.weight"], sd[f"estimation.estimation.{i}.bias"], padding=1)
            es = F.relu(es) if i < 8 else es
        noise = torch.norm(es, 1) / (y.shape[1] * y.shape[2] * y.shape[3])
        if noise.item() < threshold:
            return u, noise
    feat = F.conv2d(u, sd["denoise_net.stem.weight"], sd["denoise_net.stem.bias"], padding=1)
    for k in range(3):
        feat = _ref_cell(sd, f"denoise_net.nrms.{k}", DENOISE[release], feat)
    return u - F.conv2d(feat, sd["denoise_net.activate.0.weight"], sd["denoise_net.activate.0.bias"], padding=1), noise


def _synthetic_checkpoint(release, path):
    source = ruas_genotype(release).build()
    with torch.no_grad():  # non-trivial weights on every edge, including the biases
        for p in source.parameters():
            p.normal_(0, 0.3)
        for stage in source.scene.stages:  # sigmoid of -6, -8, -10: above, between and below 1e-3 and 1e-4
            stage.concat_proj["out"].bias.copy_(torch.tensor([-6.0, -8.0, -10.0]))
    theirs = to_ruas_keys(source.state_dict())
    torch.save(theirs, path)
    return {k: v.double() for k, v in theirs.items()}  # the same float32 weights, computed in float64


@pytest.mark.parametrize("release", ["cvpr", "tpami"])
def test_release_layout_round_trip_matches_reference_forward(release, tmp_path):
    theirs = _synthetic_checkpoint(release, tmp_path / "w.pt")
    assert detect_release(theirs) == release
    net, genotype, extra = import_ruas(tmp_path / "w.pt")
    assert extra["release"] == release and genotype.network["variant"] == {"cvpr": "ruas", "tpami": "ruas_a"}[release]
    net, _ = load_model(save_model(tmp_path / "model.pt", genotype, net, extra=extra))
    net = net.double()
    y = torch.rand(1, 3, 24, 20, dtype=torch.float64) * 0.01
    with torch.no_grad():
        out = net(y)
    t_min = genotype.spaces["scene"].model["t_min"]
    assert t_min == {"cvpr": 1e-3, "tpami": 1e-4}[release]
    assert (out["t"] == t_min).any() and (out["t"] > t_min).any()  # the floor is exercised
    if release == "cvpr":
        torch.testing.assert_close(out["x"], _ref_forward(theirs, y, release)[0])
        return
    assert genotype.network["threshold"] == 0.035 and "estimation.estimation.8.weight" in theirs
    level = float(out["noise"][0])
    for threshold in (level / 2, level * 2):  # denoiser on, then gated off
        net.threshold = threshold
        with torch.no_grad():
            out = net(y)
        ref_x, ref_noise = _ref_forward(theirs, y, release, threshold)
        torch.testing.assert_close(out["noise"][0], ref_noise)
        torch.testing.assert_close(out["x"], ref_x)
        assert torch.equal(out["x"], out["u"]) == (threshold > level)


def test_unknown_layout_is_refused(tmp_path):
    torch.save({"backbone.conv.weight": torch.zeros(1)}, tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="unrecognised RUAS weight names: backbone.conv.weight"):
        import_ruas(tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="not a nas-llv model file"):
        load_model(tmp_path / "w.pt")


def test_model_file_round_trip_with_full_size_build(tmp_path):
    genotype = ruas_genotype("cvpr")
    net = genotype.build(channels={"denoise": 8}, repeat={"denoise": 2})
    path = save_model(tmp_path / "run" / "model.pt", genotype, net, build={"channels": {"denoise": 8},
                                                                           "repeat": {"denoise": 2}})
    loaded, geno = load_model(tmp_path / "run")
    assert geno.choices == genotype.choices and len(loaded.denoise.blocks) == 2
    y = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(y)["x"], net.eval()(y)["x"], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="unknown build keys"):
        save_model(path, genotype, net, build={"width": 8})
