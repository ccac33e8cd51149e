"""Retraining (`nas-llv train`): run folder, model file round trip, full-size rebuild, exact resume,
learning, --init, variants and one-line errors."""
from __future__ import annotations

import os
import signal

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.space.genotype import Genotype
from nas_llv.losses.ruas import RUASDenoiseLoss, RUASSceneLoss
from nas_llv.metrics import quantize
from nas_llv.export.modelfile import load_model, save_model
from nas_llv.recipe import recipe_from_dict
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.results import CSV_FLOATS
from nas_llv.runs import Run
from nas_llv.signals import Terminated
from nas_llv.config import ConfigError
from nas_llv.retrain.trainer import TrainingObjective, Trainer, load_source, resolve_build
from nas_llv.space.spec import load_space

TINY = {
    "name": "tiny",
    "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16, "batch_size": 2},
    "losses": {"l1": {"type": "l1"}, "scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
    "train": {"steps": 6, "val_every": 2, "val_batches": 1, "checkpoint_every": 2,
              "objective": {"scene": 1.0, "task": 1.0, "l1": 1.0}, "optim": {"lr": 0.01}},
}
FILES = ("config.yaml", "log.txt", "trajectory.csv", "checkpoints/last.pt", "genotype.yaml", "model.pt", "model_best.pt")


def _data(**train):
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["train"].update(train)
    return data


def _trainer(genotype, tmp_path, init=None, **train):
    recipe = recipe_from_dict(_data(**train), "tiny.yaml")
    geno, build = load_source(genotype)
    trainer = Trainer(recipe, geno, resolve_build(recipe.train, build), init)
    trainer.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return trainer


@pytest.fixture
def genotype(tmp_path):
    return str(ruas_genotype("cvpr", "ruas").save(tmp_path / "cvpr_genotype.yaml"))


@pytest.fixture
def recipe_file(tmp_path):
    def write(**train):
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(_data(**train)))
        return str(path)
    return write


def _runs(root):
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _frame(run):
    return pd.read_csv(run / "trajectory.csv", **CSV_FLOATS)


def test_run_folder_is_complete_and_model_rebuilds(genotype, tmp_path):
    t = _trainer(genotype, tmp_path / "out")
    assert t.run() is True
    run = t.attached_run.dir
    assert all((run / f).is_file() for f in FILES)
    df = _frame(run)
    assert df.step.tolist() == [0, 2, 4, 6] and set(df.module) == {"all"}
    assert {"loss/scene", "loss/task", "loss/l1", "metric/psnr", "metric/ssim", "lr"} <= set(df.columns)
    net, geno = load_model(run / "model.pt")
    y = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(net(y)["x"], t.net.eval()(y)["x"])
    assert geno.choices == t.genotype.choices
    # The logged validation PSNR is the 8-bit output's PSNR, as scikit-image computes it.
    t.val_data.load_state_dict(t._val_start)
    batch = next(t.val_data)
    with torch.no_grad():
        x = quantize(net(batch["low"])["x"].clamp(0, 1).double()).numpy().transpose(0, 2, 3, 1)
    gt = batch["high"].double().numpy().transpose(0, 2, 3, 1)
    ref = np.mean([peak_signal_noise_ratio(g, o, data_range=1) for g, o in zip(gt, x)])
    assert df["metric/psnr"].iloc[-1] == pytest.approx(ref, abs=1e-9)


def test_full_size_rebuild_changes_the_network(genotype, tmp_path):
    small = _trainer(genotype, tmp_path / "a", steps=1)
    big = _trainer(genotype, tmp_path / "b", steps=1, channels={"denoise": 12}, repeat={"denoise": 4})
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(small.net) == 3438  # the published CVPR size
    assert count(big.net) > count(small.net)
    assert big.net.denoise.stem.out_channels == 12 and len(big.net.denoise.blocks) == 4
    big.run()
    net, _ = load_model(big.attached_run.dir / "model.pt")
    assert count(net) == count(big.net)
    assert torch.load(big.attached_run.dir / "model.pt", weights_only=True)["build"] == {"channels": {"denoise": 12},
                                                                                   "repeat": {"denoise": 4}}


def test_resume_equals_uninterrupted(genotype, tmp_path, recipe_file):
    recipe = recipe_file(steps=7, val_every=2, checkpoint_every=5)
    assert main(["train", genotype, "--recipe", recipe, "--output", str(tmp_path / "a")]) == 0
    assert main(["train", genotype, "--recipe", recipe, "--output", str(tmp_path / "b"), "--stop-after", "3"]) == 0
    (a,), (b,) = _runs(tmp_path / "a"), _runs(tmp_path / "b")
    assert not (b / "model.pt").exists() and _frame(b).step.max() == 2
    assert main(["train", "--resume", str(b)]) == 0
    pd.testing.assert_frame_equal(_frame(a).drop(columns="seconds"), _frame(b).drop(columns="seconds"))
    sa, sb = (torch.load(r / "model.pt", weights_only=True)["state_dict"] for r in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("signum, raised", [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_interrupt_checkpoints_at_a_step_boundary_and_resumes_exactly(genotype, tmp_path, signum, raised):
    # SIGTERM (preemption) is handled as Ctrl-C is, and raises Terminated (exit 143 on the command line)
    full = _trainer(genotype, tmp_path / "a", steps=5)
    full.run()
    t = _trainer(genotype, tmp_path / "b", steps=5)
    step = t._iteration

    def iteration():
        if t.step == 2:
            os.kill(os.getpid(), signum)  # arrives mid-step: the step still completes
        step()

    t._iteration = iteration
    with pytest.raises(raised):
        t.run()
    state = t.attached_run.load_checkpoint()
    assert state["progress"]["step"] == 3
    again = Trainer(t.recipe, t.genotype, t.build)
    again.attach(Run.open(t.attached_run.dir), new=False)
    again.load_state_dict(state)
    again.run()
    pd.testing.assert_frame_equal(_frame(full.attached_run.dir).drop(columns="seconds"),
                                  _frame(t.attached_run.dir).drop(columns="seconds"))


def test_supervised_training_improves_validation_psnr(genotype, tmp_path):
    t = _trainer(genotype, tmp_path, steps=60, val_every=60, objective={"l1": 1.0}, optim={"lr": 3e-3})
    t.run()
    psnr = _frame(t.attached_run.dir)["metric/psnr"].tolist()
    assert len(psnr) == 2 and psnr[1] > psnr[0] + 3


def test_init_starts_from_the_model_weights(genotype, tmp_path):
    first = _trainer(genotype, tmp_path / "a", steps=4)
    first.run()
    second = _trainer(genotype, tmp_path / "b", init=first.attached_run.dir / "model.pt", steps=4)
    # Same validation batches: the step-0 validation of the second run is the first run's last.
    assert _frame(second.attached_run.dir).val_loss.iloc[0] == _frame(first.attached_run.dir).val_loss.iloc[-1]


def test_variant_override_trains_the_scene_module_alone(genotype, tmp_path):
    t = _trainer(genotype, tmp_path, steps=2, variant="ruas_s", objective={"scene": 1.0, "l1": 1.0})
    t.run()
    net, geno = load_model(t.attached_run.dir / "model.pt")
    assert net.denoise is None and set(geno.spaces) == {"scene"} and geno.network["variant"] == "ruas_s"


def _count_calls(net):
    calls = {"scene": 0, "denoise": 0}
    for name in calls:
        getattr(net, name).register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    return calls


def test_each_module_runs_once_per_step_unless_an_entry_reads_x(genotype, tmp_path):
    t = _trainer(genotype, tmp_path / "a", objective={"scene": 1.0, "task": 1.0})
    calls = _count_calls(t.net)
    t._iteration()
    assert calls == {"scene": 1, "denoise": 1}
    t.validate()  # one paired batch: the full forward gives the metrics' x, which the task term reuses
    assert calls == {"scene": 2, "denoise": 2}
    t = _trainer(genotype, tmp_path / "b")  # l1 reads the full output's x as well
    calls = _count_calls(t.net)
    t._iteration()
    assert calls == {"scene": 1, "denoise": 2}


def test_task_entry_trains_the_denoiser_alone(genotype, tmp_path):
    t = _trainer(genotype, tmp_path, objective={"scene": 1.0, "task": 2.0})
    batch = next(t.train_data)
    total, terms, _ = t.objective(t.net, batch)
    total.backward()
    grads = {n: p.grad.clone() for n, p in t.net.named_parameters()}
    t.net.zero_grad()
    out = t.net(batch["low"])
    u = out["u"].detach()
    ref = RUASSceneLoss()(out, batch) + 2 * RUASDenoiseLoss()({"x": t.net.denoise(u), "u": u}, batch)
    ref.backward()
    assert float(total.detach()) == pytest.approx(float(ref.detach()), rel=1e-6) and set(terms) == {"scene", "task"}
    for name, p in t.net.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, msg=name)


def test_an_entry_for_an_absent_module_is_refused():
    net = ruas_genotype("cvpr", "ruas_s").build()  # RUAS.objective_modules: task trains net.denoise
    with pytest.raises(ConfigError) as err:
        TrainingObjective(TINY["losses"], {"scene": 1.0, "task": 1.0}, net)
    assert str(err.value) == ("train.objective: task trains the denoise module, which this network does not "
                              "have (variant ruas_s); drop it from train.objective")


def test_a_network_without_hooks_trains_every_entry_on_its_full_output():
    space = load_space("ruas_denoise")
    net = Genotype({"type": "single"}, {"net": space}, {e.label: "conv_3x3" for e in space.cell.searchable}).build()
    objective = TrainingObjective(TINY["losses"], {"l1": 1.0}, net)
    assert objective.own == frozenset() and not objective.partial
    batch = {"low": torch.rand(2, 3, 16, 16), "high": torch.rand(2, 3, 16, 16)}
    total, terms, out = objective(net, batch)
    total.backward()
    assert set(terms) == {"l1"} and out.shape == (2, 3, 16, 16)
    assert all(p.grad is not None for p in net.parameters())


def test_ruas_a_from_random_weights_warns_that_its_gate_is_untrained(genotype, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="nas_llv"):
        _trainer(genotype, tmp_path / "a", steps=1, variant="ruas_a")
    assert "no objective term trains the noise estimator" in caplog.text
    caplog.clear()
    _trainer(genotype, tmp_path / "b", steps=1)
    assert "noise estimator" not in caplog.text


def _searched_as_ruas_s():
    full = ruas_genotype("cvpr", "ruas")  # a ruas_s search keeps the denoise space but chooses no op in it
    scene = {k: v for k, v in full.choices.items() if k.startswith("scene.")}
    return Genotype({"type": "ruas", "variant": "ruas_s"}, dict(full.spaces), scene)


def test_variant_with_a_denoiser_needs_denoiser_choices(tmp_path, recipe_file, capsys):
    # (with_variant itself: tests/test_genotype.py)
    path = _searched_as_ruas_s().save(tmp_path / "genotype.yaml")
    err = _error(capsys, ["train", str(path), "--recipe", recipe_file(), "--output", str(tmp_path / "o"),
                          "train.variant=ruas"])
    assert "train.variant=ruas needs a denoise module" in err and not (tmp_path / "o").exists()


def _error(capsys, args):
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_missing_genotype_is_one_line(tmp_path, recipe_file, capsys):
    err = _error(capsys, ["train", str(tmp_path / "nope"), "--recipe", recipe_file(), "--output", str(tmp_path / "o")])
    assert "no such genotype file, run folder or model file" in err
    assert not (tmp_path / "o").exists()


def test_ground_truth_loss_on_unpaired_data_fails_before_any_run_folder(genotype, tmp_path, recipe_file, capsys):
    folder = tmp_path / "night"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20, 3), 20 * i, np.uint8)).save(folder / f"{i}.png")
    args = ["train", genotype, "--recipe", recipe_file(), "--output", str(tmp_path / "o"),
            "data.type=folder", f"data.root={folder}", "data.demo_count=null", "data.demo_size=null"]
    assert "needs ground truth 'high'" in _error(capsys, args)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override, message", [
    ("train.objective={perceptual: 1.0}", "perceptual not in the recipe's losses"),
    ("train.variant=ruas_s", "task trains the denoise module"),
    ("train.steps=0", "steps=0 must be >= 1"),
])
def test_bad_train_section_is_one_line(genotype, tmp_path, recipe_file, capsys, override, message):
    err = _error(capsys, ["train", genotype, "--recipe", recipe_file(), "--output", str(tmp_path / "o"), override])
    assert message in err and not (tmp_path / "o").exists()


def test_init_that_does_not_fit_is_one_line(genotype, tmp_path, recipe_file, capsys):
    geno, _ = load_source(genotype)
    model = save_model(tmp_path / "wide.pt", geno, geno.build(channels={"denoise": 8}), {"channels": {"denoise": 8}})
    args = ["train", genotype, "--init", str(model), "--recipe", recipe_file(), "--output", str(tmp_path / "o")]
    err = _error(capsys, args)
    assert "do not fit" in err and "train.channels" in err


def test_resume_of_a_search_run_is_refused(tmp_path, capsys):
    run = Run.create({"name": "s"}, "s", tmp_path)
    run.save_checkpoint({"kind": "search", "progress": {"step": 1}})
    run.close()
    assert "a search run, not a train run" in _error(capsys, ["train", "--resume", str(run.dir)])


def test_epochs_replace_steps(genotype, tmp_path):
    t = _trainer(genotype, tmp_path, epochs=3)
    assert t.total_steps == 3 * t.train_data.epoch_length


def test_demo_train_recipe_runs_on_the_cli(genotype, tmp_path):
    args = ["train", genotype, "--recipe", str(RECIPES / "ruas_demo_train.yaml"), "--output", str(tmp_path),
            "train.steps=2", "train.val_batches=1", "data.demo_size=32", "data.crop=16"]
    assert main(args) == 0
    (run,) = _runs(tmp_path)
    assert all((run / f).is_file() for f in FILES)
    assert {"loss/l1", "loss/ssim", "metric/psnr"} <= set(_frame(run).columns)


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_chooses_what_model_pt_holds(genotype, tmp_path, caplog, capsys, keep):
    args = ["train", genotype, "--recipe", str(RECIPES / "ruas_demo_train.yaml"), "--output", str(tmp_path),
            "train.steps=3", "train.val_every=1", "train.val_batches=1", "data.demo_size=32", "data.crop=16",
            "--keep", keep]
    with caplog.at_level("INFO"):
        assert main(args) == 0
    (run,) = _runs(tmp_path)
    assert capsys.readouterr().out.strip() == str(run)  # the one stdout line: the run folder
    model = run / "model.pt"
    if keep == "best":
        assert model.read_bytes() == (run / "model_best.pt").read_bytes()
        final = torch.load(run / "model_last.pt", weights_only=True)
    else:
        assert not (run / "model_last.pt").exists() and (run / "model_best.pt").is_file()
        final = torch.load(model, weights_only=True)
    assert final["extra"]["step"] == 3
    finished = next(r.getMessage() for r in caplog.records if "training finished" in r.getMessage())
    assert "final step 3: PSNR" in finished and "best step" in finished and f"holds the {keep} weights" in finished
