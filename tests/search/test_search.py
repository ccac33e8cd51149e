"""The RUAS search: hypergradients on the real supernet, coupling, resume, recipes, CLI."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from conftest import TINY_RUAS, RECIPES, tiny_searcher
from nas_llv.cli import main
from nas_llv.search.hypergrad import Bilevel
from nas_llv.recipe import recipe_from_dict
from nas_llv.registry import HYPERGRADS
from nas_llv.results import load_trajectory
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher

TINY = {
    **TINY_RUAS,
    "search": {"epochs": 2, "steps_per_epoch": 2, "val_batches": 1, "checkpoint_every": 1,
               "weights": {"lr": 0.01}, "arch": {"lr": 0.01, "betas": [0.5, 0.999]}},
}


def _recipe(**search):
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["search"].update(search)
    return recipe_from_dict(data, "tiny.yaml")


def _searcher(tmp_path, **search):
    return tiny_searcher(TINY, tmp_path, **search)


def _scene_grads(searcher, method_cfg, beta=None):
    level = searcher.levels["scene"]
    if beta is not None:
        level.beta = beta
    train_b, val_b = searcher._batch(searcher.train_data), searcher._batch(searcher.val_data)
    train_b = {k: v.double() if torch.is_tensor(v) else v for k, v in train_b.items()}
    val_b = {k: v.double() if torch.is_tensor(v) else v for k, v in val_b.items()}
    lo, up = level.objective(train_b, True), level.objective(val_b, False)
    problem = Bilevel(upper=level.upper, lower=level.lower, lower_lr=0.05,
                      lower_loss=lambda ov: lo(ov)[0], upper_loss=lambda ov: up(ov)[0])
    return torch.cat([g.flatten() for g in HYPERGRADS.build(method_cfg)(problem).values()])


@pytest.fixture
def double_searcher(tmp_path):
    s = _searcher(tmp_path)
    s.net.double()
    for loss_cfg in ("scene", "task"):
        pass
    with torch.no_grad():
        for p in s.net.parameters():
            p.add_(0.05 * torch.randn_like(p))  # move α off the near-uniform start
    return s


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _on_one_batch(s):
    """``_scene_grads(s, cfg, beta)`` as a function of (cfg, beta), each call on the same batches."""
    state = s.train_data.state_dict(), s.val_data.state_dict()

    def grads(cfg, beta=None):
        s.train_data.load_state_dict(state[0])
        s.val_data.load_state_dict(state[1])
        return _scene_grads(s, cfg, beta)
    return grads


def test_finite_difference_matches_unrolled_exact_on_the_supernet(double_searcher):
    torch.manual_seed(1)
    grads = _on_one_batch(double_searcher)
    exact = grads({"type": "unrolled_exact"})
    fd = grads({"type": "finite_difference", "r": 1e-5})
    first = grads({"type": "first_order"})
    assert _rel(fd, exact) < 1e-4
    assert _rel(first, exact) > 1e-3


def test_batched_finite_difference_matches_the_plain_one(double_searcher):
    """``batched: true`` runs the ± passes under ``torch.func.vmap``, through the scene's local max too."""
    grads = _on_one_batch(double_searcher)
    plain = grads({"type": "finite_difference"})
    assert _rel(grads({"type": "finite_difference", "batched": True}), plain) < 1e-8


def test_cooperative_coupling_beta(double_searcher):
    s = double_searcher
    on_one_batch = _on_one_batch(s)

    def grads(beta, scale_task):
        with torch.no_grad():
            s.net.denoise.head.weight.mul_(scale_task)
        g = on_one_batch({"type": "first_order"}, beta)
        with torch.no_grad():
            s.net.denoise.head.weight.div_(scale_task)
        return g

    # β = 0: the scene's α gradient ignores the task module entirely
    torch.testing.assert_close(grads(0.0, 1.0), grads(0.0, 3.0))
    # β > 0: the task loss reaches α_s through the scene's output u
    assert _rel(grads(1.0, 1.0), grads(0.0, 1.0)) > 1e-3
    assert _rel(grads(1.0, 1.0), grads(1.0, 3.0)) > 1e-3


def _trajectory(run_dir):
    frame = pd.read_csv(run_dir / "trajectory.csv")
    return frame.drop(columns=["seconds"])


def test_resume_equals_uninterrupted(tmp_path):
    a = _searcher(tmp_path / "a")
    assert a.run() is True
    b = _searcher(tmp_path / "b")
    assert b.run(stop_after=2) is False and b.step == 2  # one iteration: a scene and a task step
    b.attached_run.close()
    run = Run.open(b.attached_run.dir)
    recipe = recipe_from_dict(run.config(), "config.yaml")
    c = Searcher(recipe)
    c.attach(run)
    c.load_state_dict(run.load_checkpoint())
    assert c.run() is True
    pd.testing.assert_frame_equal(_trajectory(a.attached_run.dir), _trajectory(run.dir))
    assert (a.attached_run.dir / "genotype.yaml").read_text() != ""
    ga = yaml.safe_load((a.attached_run.dir / "genotype.yaml").read_text())["genotype"]
    gc = yaml.safe_load((run.dir / "genotype.yaml").read_text())["genotype"]
    assert ga == gc


def test_weight_lr_follows_cosine_schedule(tmp_path):
    s = _searcher(tmp_path, epochs=3, steps_per_epoch=1)
    seen = []
    orig = s._end_epoch

    def spy(start):
        seen.append(s.levels["scene"].lr)
        orig(start)
    s._end_epoch = spy
    s.run()
    expected = [0.01 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)]
    assert seen == pytest.approx(expected)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_arch_lr_follows_its_own_schedule(tmp_path, schedule):
    """``search.arch.schedule`` reaches the α optimizer (it was read and ignored before), stepped per
    epoch beside the weights' schedule, and a resumed run continues it."""
    arch = {"lr": 0.01, "betas": [0.5, 0.999], "schedule": schedule}
    s = _searcher(tmp_path / "a", epochs=3, steps_per_epoch=1, arch=arch)
    seen = []
    orig = s._end_epoch

    def spy(start):
        seen.append([s.levels[n].arch_opt.param_groups[0]["lr"] for n in ("scene", "task")])
        orig(start)
    s._end_epoch = spy
    s.run()
    if schedule == "cosine":
        expected = [[0.01 * (1 + math.cos(math.pi * e / 3)) / 2] * 2 for e in range(3)]
    else:
        expected = [[0.01, 0.01]] * 3
    assert seen == [pytest.approx(e) for e in expected]
    b = _searcher(tmp_path / "b", epochs=3, steps_per_epoch=1, arch=arch)
    assert b.run(stop_after=4) is False  # two epochs of (scene, task)
    c = Searcher(b.recipe)
    c.attach(Run.open(b.attached_run.dir))
    c.load_state_dict(b.attached_run.load_checkpoint())
    assert c.levels["scene"].arch_opt.param_groups[0]["lr"] == pytest.approx(expected[2][0])
    assert c.run()
    pd.testing.assert_frame_equal(_trajectory(s.attached_run.dir), _trajectory(b.attached_run.dir))


@pytest.mark.parametrize("strategy", ["global", "independent"])
def test_baseline_strategies_run(tmp_path, strategy):
    s = _searcher(tmp_path, strategy=strategy, hypergrad={"type": "first_order"})
    assert s.run()
    modules = set(pd.read_csv(s.attached_run.dir / "trajectory.csv")["module"])
    assert modules == ({"all"} if strategy == "global" else {"scene", "task"})


def test_cli_search_leaves_a_complete_run(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(recipe), "--output", str(tmp_path / "out"), "search.epochs=1"]) == 0
    (run,) = (tmp_path / "out").iterdir()
    for name in ("config.yaml", "log.txt", "trajectory.csv", "checkpoints/last.pt", "genotype.yaml", "genotype_best.yaml"):
        assert (run / name).is_file(), name
    tidy = load_trajectory(run)
    assert {"step", "epoch", "module", "edge", "op", "prob", "train_loss", "val_loss", "lr", "seconds"} <= set(tidy.columns)
    assert len(set(tidy["edge"])) == 14
    assert yaml.safe_load((run / "config.yaml").read_text())["search"]["epochs"] == 1
    assert main(["derive", str(run), "--no-flops"]) == 0


def test_lol_recipe_missing_folder_is_one_clear_error(tmp_path, capsys):
    code = main(["search", str(RECIPES / "ruas_lol.yaml"), f"data.root={tmp_path / 'nope'}", "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "our485" in err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_lol_recipe_runs_on_a_lol_layout(tmp_path):
    g = torch.Generator().manual_seed(0)
    for sub in ("low", "high"):
        folder = tmp_path / "LOL" / "our485" / sub
        folder.mkdir(parents=True)
        for i in range(4):
            arr = (torch.rand(24, 24, 3, generator=g) * (60 if sub == "low" else 255)).byte().numpy()
            Image.fromarray(arr).save(folder / f"{i}.png")
    args = ["search", str(RECIPES / "ruas_lol.yaml"), f"data.root={tmp_path / 'LOL'}", "data.crop=16",
            "search.epochs=1", "search.steps_per_epoch=1", "search.val_batches=1", "--output", str(tmp_path / "r")]
    assert main(args) == 0
    (run,) = (tmp_path / "r").iterdir()
    assert (run / "genotype.yaml").is_file()


def test_interrupt_checkpoints_at_an_iteration_boundary_and_resumes_exactly(tmp_path):
    import os
    import signal

    full = _searcher(tmp_path / "a", checkpoint_every=100)
    full.run()
    s = _searcher(tmp_path / "b", checkpoint_every=100)
    step = s._iteration

    def iteration(start):
        if s.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # arrives mid-iteration: the iteration still completes
        step(start)

    s._iteration = iteration
    with pytest.raises(KeyboardInterrupt):
        s.run()
    state = s.attached_run.load_checkpoint()
    assert state["progress"]["step"] == 4  # two whole iterations of (scene, task)
    again = Searcher(s.recipe)
    again.attach(Run.open(s.attached_run.dir))
    again.load_state_dict(state)
    assert again.run()
    pd.testing.assert_frame_equal(_trajectory(full.attached_run.dir), _trajectory(s.attached_run.dir))


def test_independent_phases_each_follow_their_own_cosine(tmp_path):
    s = _searcher(tmp_path, strategy="independent", epochs=4, steps_per_epoch=1,
                  hypergrad={"type": "first_order"})
    seen = []
    orig = s._end_epoch

    def spy(start):
        seen.append((s.strategy.schedule(s.epoch)[0], s.levels[s.strategy.schedule(s.epoch)[0]].lr))
        orig(start)
    s._end_epoch = spy
    s.run()
    cosine = [0.01 * (1 + math.cos(math.pi * e / 2)) / 2 for e in range(2)]
    assert seen == [("scene", pytest.approx(cosine[0])), ("scene", pytest.approx(cosine[1])),
                    ("task", pytest.approx(cosine[0])), ("task", pytest.approx(cosine[1]))]


def test_lower_steps_are_honoured(tmp_path):
    s = _searcher(tmp_path, epochs=1, steps_per_epoch=2, hypergrad={"type": "implicit_cg", "lower_steps": 3})
    s.run()
    # 2 iterations x 2 levels, each one upper step then 3 weight steps
    assert all(level.weight_opt.state_dict()["state"][0]["step"] == 6 for level in s.levels.values())


def test_resume_refuses_a_run_of_another_kind(tmp_path, capsys):
    s = _searcher(tmp_path)
    s.run(stop_after=2)
    state = s.attached_run.load_checkpoint()
    s.attached_run.save_checkpoint({**state, "kind": "train"})
    assert main(["search", "--resume", str(s.attached_run.dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a train run, not a search run" in err


@pytest.mark.parametrize("strategy", ["cooperative", "independent"])
def test_progress_counts_the_steps_the_log_and_trajectory_count(tmp_path, strategy):
    s = _searcher(tmp_path, strategy=strategy)
    assert s.progress() == (0, s.total_steps)
    s.run()
    rows = len(pd.read_csv(s.attached_run.dir / "trajectory.csv"))
    assert s.progress() == (rows, rows) == (s.step, s.total_steps)
