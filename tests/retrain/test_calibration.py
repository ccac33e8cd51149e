"""SCI's self-calibration as a RUAS training entry (loss ``sci_calibration``, entry ``calibrate``;
nas_llv/losses/sci.py): the calibration module K, the stage sum against a hand computation on
real dark images, K's training alongside the scene module, a model file without K, exact resume."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.data.synth import build_synth
from nas_llv.export.modelfile import load_model, read_model_file
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.losses.ruas import ruas_code_smoothness
from nas_llv.losses.sci import CalibrationNet, SCICalibrationLoss
from nas_llv.recipe import recipe_from_dict
from nas_llv.results import CSV_FLOATS
from nas_llv.retrain.trainer import Trainer, TrainingObjective
from nas_llv.runs import Run

DARK = {"type": "synth", "paired": False, "synth_count": 8, "synth_size": 48, "exposure_min": 0.03,
        "exposure_max": 0.1, "crop": 32, "batch_size": 4, "val_ratio": 0.25}
CALIBRATE = {"type": "sci_calibration", "stages": 3}


def _recipe_data(steps: int, **calibrate) -> dict:
    """The unsupervised recipe on tiny dark images, plus the calibrate entry."""
    data = yaml.safe_load((RECIPES / "ruas_unsupervised_train.yaml").read_text())
    data["data"] = dict(DARK)
    data["losses"]["calibrate"] = {**CALIBRATE, **calibrate}
    data["train"].update(steps=steps, val_every=2, val_batches=1, checkpoint_every=2,
                         objective={"scene": 1.0, "calibrate": 1.0})
    return data


@pytest.fixture(scope="module")
def dark() -> torch.Tensor:
    """Four real dark images (bundled photographs at 3-10 % exposure): (4, 3, 32, 32)."""
    items = build_synth(seed=3, paired=False, synth_count=4, synth_size=32, exposure_min=0.03, exposure_max=0.1)
    return torch.stack([items[i]["low"] for i in range(len(items))])


def test_calibration_module_keeps_shape_and_range(dark):
    torch.manual_seed(0)
    k = CalibrationNet(width=16, blocks=3)
    r = (dark / 0.3).clamp(0, 1)
    s = k(r)
    assert s.shape == r.shape
    assert (s < r).all() and (s > r - 1).all()  # s = r - sigmoid(...)
    assert k.blocks[0] is k.blocks[2]  # SCI's code appends one block module three times
    assert CalibrationNet(blocks=3, share_blocks=False).blocks[0] is not CalibrationNet(blocks=3, share_blocks=False).blocks[1]


def test_stage_sum_matches_a_hand_computation(dark):
    torch.manual_seed(0)
    net = ruas_genotype("cvpr", "ruas_s").build()
    objective = TrainingObjective({"calibrate": {"type": "sci_calibration", "stages": 2}}, {"calibrate": 1.0}, net)
    total, terms, _ = objective(net, {"low": dark})
    k = _calibrator(objective)
    y = dark
    with torch.no_grad():
        i0 = net.scene(y)["t"]
        r0 = torch.clamp(y / i0, 0, 1)
        fea = k.in_conv(r0)
        for block in k.blocks:
            fea = fea + block(fea)
        v1 = y + r0 - k.out_conv(fea)
        i1 = net.scene(v1)["t"]
        hand = sum(1.5 * ((i - v) ** 2).mean() + ruas_code_smoothness(v, i, 0.1, "ycbcr")
                   for i, v in ((i0, y), (i1, v1)))
    assert torch.allclose(total.detach(), hand, rtol=1e-5)
    assert torch.allclose(terms["calibrate"].detach(), hand, rtol=1e-5)
    assert not torch.allclose(v1, y)  # the second stage really runs on a calibrated input


def test_calibration_needs_the_networks_illumination_function():
    loss = SCICalibrationLoss()
    y = torch.rand(1, 3, 8, 8)
    with pytest.raises(ConfigError, match="illuminate"):
        loss({"t": y, "illuminate": y}, {"low": y})
    with pytest.raises(ConfigError, match="stages"):
        SCICalibrationLoss(stages=1)


def _calibrator(objective: TrainingObjective) -> CalibrationNet:
    return next(m.calibrator for m in objective.modules() if isinstance(m, SCICalibrationLoss))


def _trainer(tmp_path, steps: int) -> Trainer:
    recipe = recipe_from_dict(_recipe_data(steps), "calibrate.yaml")
    trainer = Trainer(recipe, ruas_genotype("cvpr", "ruas_s"))
    trainer.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return trainer


def test_calibration_module_is_trained_and_left_out_of_the_model_file(tmp_path, dark):
    trainer = _trainer(tmp_path, steps=2)
    k = _calibrator(trainer.objective)
    optimised = {id(p) for group in trainer.opt.param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in k.parameters())
    before = [p.detach().clone() for p in k.parameters()]
    trainer.run()
    assert any(not torch.equal(a, p) for a, p in zip(before, k.parameters()))  # K's gradients reached its weights
    model = trainer.attached_run.dir / "model.pt"
    assert not any("calibrat" in key for key in read_model_file(model)["state_dict"])
    rebuilt = load_model(model)[0].eval()
    assert not any(isinstance(m, CalibrationNet) for m in rebuilt.modules())
    with torch.no_grad():
        assert torch.equal(rebuilt(dark)["x"], trainer.net.eval()(dark)["x"])  # inference: F on y alone


def test_validation_leaves_the_calibrators_statistics_and_every_mode_as_it_was(tmp_path):
    """K's BatchNorm runs on its running statistics during validation and does not update them; each
    submodule of the network and the objective is back in its own mode after (one is left in eval mode
    here, as a loss keeps its fixed networks)."""
    trainer = _trainer(tmp_path, steps=2)
    k = _calibrator(trainer.objective)
    k.blocks[0].eval()
    stats = {n: b.clone() for n, b in k.named_buffers()}
    modes = [m.training for m in (*trainer.net.modules(), *trainer.objective.modules())]
    assert True in modes and False in modes
    trainer.validate()
    assert all(torch.equal(stats[n], b) for n, b in k.named_buffers())
    assert [m.training for m in (*trainer.net.modules(), *trainer.objective.modules())] == modes


def test_a_calibrated_training_resumes_exactly(tmp_path):
    path = tmp_path / "calibrate.yaml"
    path.write_text(yaml.safe_dump(_recipe_data(steps=4)))
    genotype = str(ruas_genotype("cvpr", "ruas_s").save(tmp_path / "g.yaml"))
    assert main(["train", genotype, "--recipe", str(path), "--output", str(tmp_path / "a"), "--threads", "1"]) == 0
    assert main(["train", genotype, "--recipe", str(path), "--output", str(tmp_path / "b"), "--threads", "1",
                 "--stop-after", "2"]) == 0
    (b,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    assert main(["train", "--resume", str(b), "--threads", "1"]) == 0
    (a,) = [p for p in (tmp_path / "a").iterdir() if p.is_dir()]
    frames = [pd.read_csv(r / "trajectory.csv", **CSV_FLOATS).drop(columns="seconds") for r in (a, b)]
    pd.testing.assert_frame_equal(*frames)
    ka, kb = (torch.load(r / "checkpoints" / "last.pt", weights_only=False)["objective"] for r in (a, b))
    (name,) = ka  # the calibrate entry's loss, K's weights and batch-norm statistics
    assert name.startswith("calibrate") and all(torch.equal(ka[name][n], kb[name][n]) for n in ka[name])
