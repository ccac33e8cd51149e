"""Safety: no file a user hands over runs code, a diverging run stops with no result, nothing is
left half-made (issue 8). The bad-input corpus is in test_bad_input.py."""
from __future__ import annotations

import json
import os
import random
import stat

import numpy as np
import pytest
import torch
import yaml

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.evaluation.scoring import write_summary
from nas_llv.atomic import atomic_write
from nas_llv.export.modelfile import save_model
from nas_llv.recipe import recipe_from_dict
from nas_llv.search.loop import Searcher
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.runs import Run

TINY_SEARCH = ["search.epochs=1", "search.steps_per_epoch=2", "search.val_batches=1", "data.demo_count=4",
               "data.demo_size=32", "data.crop=16", "data.batch_size=1"]
TINY_TRAIN = ["train.steps=2", "train.val_every=1", "train.val_batches=1", "data.demo_count=4",
              "data.demo_size=32", "data.crop=16", "data.batch_size=1"]


class Payload:
    """Unpickling this runs ``open(path, 'w')``: it creates a file (a stand-in for any command)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _error(capsys, args: list[str], code: int = 2) -> str:
    assert main(args) == code
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def _runs(root):
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A stopped search run and a stopped training run (the real files that --resume reads)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["search", str(RECIPES / "ruas_demo.yaml"), *TINY_SEARCH, "--output", str(root / "s"),
                 "--stop-after", "1"]) == 0
    genotype = ruas_genotype("cvpr", "ruas").save(root / "genotype.yaml")
    assert main(["train", str(genotype), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), *TINY_TRAIN,
                 "--output", str(root / "t"), "--stop-after", "1"]) == 0
    return {"search": _runs(root / "s")[0], "train": _runs(root / "t")[0], "genotype": genotype}


@pytest.fixture
def model_file(tmp_path):
    geno = ruas_genotype("cvpr", "ruas")
    return save_model(tmp_path / "model.pt", geno, geno.build())


def _copy_run(src, dst):
    import shutil

    return shutil.copytree(src, dst)


# -- a checkpoint runs no code ---------------------------------------------------------------------

def test_the_payload_is_real(tmp_path):
    """The payload used below does create its file when loaded the unsafe way."""
    marker = tmp_path / "pwned"
    torch.save({"kind": "search", "x": Payload(marker)}, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def _loading_commands(runs, model_file, tmp_path, evil):
    """Every command that reads a user's torch file, with ``evil`` put in that file's place."""
    search_run = _copy_run(runs["search"], tmp_path / "search_run")
    train_run = _copy_run(runs["train"], tmp_path / "train_run")
    for run in (search_run, train_run):
        (run / "checkpoints" / "last.pt").write_bytes(evil.read_bytes())
    data = RECIPES.parent / "tests"  # any folder: the model is refused before data is read
    recipe = str(RECIPES / "ruas_demo_train.yaml")
    return {
        "search --resume": ["search", "--resume", str(search_run)],
        "train --resume": ["train", "--resume", str(train_run)],
        "eval": ["eval", str(evil), "--data", str(data)],
        "enhance": ["enhance", str(evil), str(data), str(tmp_path / "out")],
        "train MODEL": ["train", str(evil), "--recipe", recipe, "--output", str(tmp_path / "o")],
        "train --init": ["train", str(runs["genotype"]), "--init", str(evil), "--recipe", recipe,
                         "--output", str(tmp_path / "o")],
        "import-ruas": ["import-ruas", str(evil), "-o", str(tmp_path / "imported.pt")],
    }


@pytest.mark.parametrize("command", ["search --resume", "train --resume", "eval", "enhance", "train MODEL",
                                     "train --init", "import-ruas"])
def test_a_pickle_payload_is_refused_and_runs_nothing(runs, model_file, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"nas_llv": "0.1.0", "kind": "search", "progress": {}, "state_dict": {}, "x": Payload(marker)}, evil)
    args = _loading_commands(runs, model_file, tmp_path, evil)[command]
    err = _error(capsys, args)
    assert "refused" in err and "untrusted" in err and ("evil.pt" in err or "last.pt" in err)
    assert not marker.exists()
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
    assert not (tmp_path / "imported.pt").exists()


@pytest.mark.parametrize("kind", ["search", "train"])
@pytest.mark.parametrize("content", ["empty", "truncated", "a list", "text", "no kind"])
def test_a_broken_checkpoint_on_resume_is_one_line(runs, tmp_path, capsys, kind, content):
    run = _copy_run(runs[kind], tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    good = last.read_bytes()
    if content == "empty":
        last.write_bytes(b"")
    elif content == "truncated":
        last.write_bytes(good[: len(good) // 2])
    elif content == "a list":
        torch.save([1, 2, 3], last)
    elif content == "text":
        last.write_text("not a checkpoint\n")
    else:
        torch.save({"progress": {"step": 1}}, last)
    err = _error(capsys, [kind, "--resume", str(run)])
    assert "last.pt" in err


def test_a_checkpoint_that_does_not_fit_is_one_line(runs, tmp_path, capsys):
    run = _copy_run(runs["search"], tmp_path / "run")
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["network"] = {"nothing": torch.zeros(1)}
    torch.save(state, last)
    assert "does not fit" in _error(capsys, ["search", "--resume", str(run)])


# -- divergence is an error, not a result ---------------------------------------------------------

def test_a_diverging_search_stops_with_no_genotype(tmp_path, capsys):
    args = ["search", str(RECIPES / "ruas_demo.yaml"), *TINY_SEARCH, "search.epochs=3", "search.checkpoint_every=1",
            "search.weights.lr=1e9", "search.arch.lr=1e9", "--output", str(tmp_path)]
    err = _error(capsys, args)
    assert "diverged at step" in err and "module" in err and ("is nan" in err or "is inf" in err)
    (run,) = _runs(tmp_path)
    assert not (run / "genotype.yaml").exists() and not (run / "genotype_best.yaml").exists()
    step = int(err.split("diverged at step ")[1].split(",")[0])
    last = run / "checkpoints" / "last.pt"
    if last.exists():  # the checkpoint left is the last finite state, before the step that diverged
        state = torch.load(last, weights_only=True)
        assert state["progress"]["step"] < step
        assert all(torch.isfinite(v).all() for v in state["network"].values())
    else:
        assert "no checkpoint was written" in err


def test_a_diverging_training_run_stops_at_that_step(runs, tmp_path, capsys):
    args = ["train", str(runs["genotype"]), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), *TINY_TRAIN,
            "train.steps=20", "train.checkpoint_every=1", "train.optim.lr=1e12", "train.optim.grad_clip=null",
            "--output", str(tmp_path)]
    err = _error(capsys, args)
    assert "train diverged at step" in err
    (run,) = _runs(tmp_path)
    assert not (run / "model.pt").exists()
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["network"].values())


def test_a_search_never_writes_a_genotype_from_nan(tmp_path):
    recipe = recipe_from_dict({**yaml.safe_load((RECIPES / "ruas_demo.yaml").read_text()),
                               "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16}}, "r.yaml")
    searcher = Searcher(recipe)
    searcher.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    with torch.no_grad():
        next(iter(searcher.levels["scene"].upper.values())).fill_(float("nan"))
    with pytest.raises(Exception, match="diverged.*upper variable"):
        searcher.finish()
    searcher.attached_run.close()
    assert not (searcher.attached_run.dir / "genotype.yaml").exists()


@pytest.mark.parametrize("command", ["eval", "enhance"])
def test_a_model_with_nan_weights_is_refused(tmp_path, capsys, command):
    geno = ruas_genotype("cvpr", "ruas")
    net = geno.build()
    with torch.no_grad():
        next(net.parameters()).view(-1)[0] = float("nan")
    path = save_model(tmp_path / "nan.pt", geno, net)
    args = {"eval": ["eval", str(path), "--data", str(tmp_path)],
            "enhance": ["enhance", str(path), str(RECIPES), str(tmp_path / "out")]}[command]
    assert "NaN or infinite" in _error(capsys, args)
    assert not (tmp_path / "out").exists()


def test_summary_json_is_strict(tmp_path):
    path = write_summary(tmp_path / "summary.json", {"psnr": float("inf"), "ssim": float("nan"), "params": 3})

    def refuse(name):
        raise ValueError(f"bare {name} in summary.json")

    data = json.loads(path.read_text(), parse_constant=refuse)
    assert data == {"psnr": None, "ssim": None, "params": 3}


# -- nothing half-made or lost ---------------------------------------------------------------------

def test_a_search_that_fails_before_its_first_step_leaves_no_folder(tmp_path, capsys):
    low = tmp_path / "low"
    low.mkdir()
    from PIL import Image

    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i + 10, np.uint8)).save(low / f"{i}.png")
    # an L1 loss needs ground truth, which a folder of low-light images alone does not have
    tiny = [a for a in TINY_SEARCH if not a.startswith(("data.demo_count", "data.demo_size"))]
    args = ["search", str(RECIPES / "ruas_demo.yaml"), *tiny, "data.type=folder", f"data.root={low}",
            "data.demo_count=null", "data.demo_size=null",
            "data.val_ratio=0.5", "losses.scene={type: l1}", "--output", str(tmp_path / "r")]
    assert "needs" in _error(capsys, args)  # the loss names what it lacks
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_temp_files_left_by_a_kill_are_removed(tmp_path):
    with Run.create({"name": "r"}, "r", tmp_path) as run:
        run.save_checkpoint({"step": 1})
    stale = [run.dir / "checkpoints" / ".last.pt.abcd1234.tmp", run.dir / ".trajectory.csv.x1y2z3w4.tmp"]
    for p in stale:
        p.write_bytes(b"torn")
    Run.open(run.dir).close()
    assert not any(p.exists() for p in stale)
    (run.dir / "checkpoints" / ".last.pt.zzzz9999.tmp").write_bytes(b"torn")
    with Run.open(run.dir):
        pass
    assert sorted(p.name for p in (run.dir / "checkpoints").iterdir()) == ["last.pt"]


def test_a_checkpoint_on_an_epoch_end_is_written_once(tmp_path, monkeypatch):
    saved = []
    real = Run.save_checkpoint
    monkeypatch.setattr(Run, "save_checkpoint", lambda self, state, name="last.pt": (
        saved.append(state["progress"]["step"]), real(self, state, name))[1])
    args = ["search", str(RECIPES / "ruas_demo.yaml"), *TINY_SEARCH, "search.epochs=2", "search.checkpoint_every=2",
            "--output", str(tmp_path)]
    assert main(args) == 0
    assert saved and len(saved) == len(set(saved)), saved


def test_atomic_files_get_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        import importlib

        import nas_llv.atomic as atomic

        importlib.reload(atomic)
        path = atomic.atomic_write(tmp_path / "f.txt", lambda p: p.write_text("x"))
    finally:
        os.umask(old)
        importlib.reload(atomic)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(atomic_write(tmp_path / "g.txt", lambda p: p.write_text("x")).stat().st_mode) == 0o666 & ~old


def _draws_after_build(seed: int) -> tuple[float, float]:
    recipe = recipe_from_dict({**yaml.safe_load((RECIPES / "ruas_demo.yaml").read_text()), "seed": seed,
                               "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16}}, "r.yaml")
    Searcher(recipe).close()
    return random.random(), float(np.random.rand())


def test_python_and_numpy_are_seeded_with_the_run(tmp_path):
    random.seed(123), np.random.seed(123)
    a = _draws_after_build(3)
    random.seed(456), np.random.seed(456)
    assert _draws_after_build(3) == a
    assert _draws_after_build(4) != a
