"""``speed.sync_every`` in ``nas-llv train``: a training step reads nothing to the host. Its loss terms
and finiteness flags stay on the device and are read in one transfer every ``sync_every`` steps, and
at each validation row and checkpoint. Rows, divergence reports and resumes are those of a run read
every step."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from conftest import host_reads_per_call
from nas_llv.cli import main
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.job import Diverged
from nas_llv.recipe import recipe_from_dict
from nas_llv.retrain import trainer as trainer_mod
from nas_llv.retrain.trainer import Trainer
from nas_llv.runs import Run

TINY = {"name": "tiny", "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16, "batch_size": 2},
        "losses": {"l1": {"type": "l1"}, "scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
        "train": {"steps": 7, "val_every": 3, "val_batches": 1, "checkpoint_every": 100,
                  "objective": {"scene": 1.0, "task": 1.0, "l1": 1.0}, "optim": {"lr": 0.01}}}


def _data(sync_every: int, **train) -> dict:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    data["train"].update(train)
    data["speed"] = {"sync_every": sync_every}
    return data


def _trainer(tmp_path, sync_every: int, **train) -> Trainer:
    recipe = recipe_from_dict(_data(sync_every, **train), "tiny.yaml")
    trainer = Trainer(recipe, ruas_genotype("cvpr", "ruas"))
    trainer.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return trainer


def _rows(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trajectory.csv").drop(columns="seconds")


@pytest.mark.parametrize("sync_every, reads", [(4, [0, 0, 0, 1, 0, 0, 0, 1]), (1, [1] * 8)])
def test_a_training_step_reads_the_host_only_every_sync_every_steps(tmp_path, monkeypatch, sync_every, reads):
    """Eight steps between validations: with ``sync_every: 4`` the steps between reads read nothing,
    and a read is one ``tolist`` in rows.py; read every step, each step is one."""
    t = _trainer(tmp_path, sync_every, steps=20, val_every=20)
    seen = host_reads_per_call(monkeypatch, lambda: t.advance(0.0), 8)
    assert [len(c) for c in seen] == reads, seen
    assert all(name == "tolist" and where == "rows.py" for c in seen for name, where, _ in c)


def test_the_rows_are_the_same_whichever_sync_every(tmp_path):
    """Read every 5 steps, with validations every 3: each row still averages exactly its own steps."""
    runs = {}
    for every in (1, 5):
        t = _trainer(tmp_path / str(every), every)
        assert t.run() is True
        runs[every] = _rows(t.attached_run.dir)
    assert list(runs[1]["step"]) == [0, 3, 6, 7] and runs[1]["train_loss"].iloc[1:].notna().all()
    pd.testing.assert_frame_equal(runs[1], runs[5])


def test_a_nan_between_reads_is_reported_at_its_step_and_no_checkpoint_follows(tmp_path, monkeypatch):
    """The weights made NaN at step 2, read at step 3's validation row: the error a run read every step
    gives (step 2, a weight), no row after step 0's, and no checkpoint."""
    errors, trainers = [], []

    def poisoned(objective, _step=trainer_mod.step_discriminators):  # right after the optimizer's step
        t = trainers[-1]
        if t.step + 1 == 2:
            with torch.no_grad():
                next(iter(t.net.parameters())).fill_(float("nan"))
        return _step(objective)
    monkeypatch.setattr(trainer_mod, "step_discriminators", poisoned)
    for every in (1, 5):
        trainers.append(t := _trainer(tmp_path / str(every), every))
        with pytest.raises(Diverged) as err:
            t.run()
        errors.append(str(err.value))
        assert list(_rows(t.attached_run.dir)["step"]) == [0]
        assert not (t.attached_run.dir / "checkpoints" / "last.pt").exists()
    assert errors[0] == errors[1] and "train diverged at step 2, module all: weight" in errors[0], errors
    assert "no checkpoint was written" in errors[0]


def test_a_run_stopped_between_reads_resumes_to_the_uninterrupted_trajectory(tmp_path):
    """Stopped after 4 steps with figures read every 5: the checkpoint carries the sums of steps 4
    (the row at 3 took steps 1-3), so the resumed row at step 6 averages steps 4-6 as a whole run's."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(_data(5)))
    assert main(["train", "--recipe", str(recipe), *_genotype(tmp_path), "--output", str(tmp_path / "a")]) == 0
    assert main(["train", "--recipe", str(recipe), *_genotype(tmp_path), "--output", str(tmp_path / "b"),
                 "--stop-after", "4"]) == 0
    (a,), (b,) = ([p for p in (tmp_path / x).iterdir() if p.is_dir()] for x in ("a", "b"))
    assert main(["train", "--resume", str(b)]) == 0
    pd.testing.assert_frame_equal(_rows(a), _rows(b))


def _genotype(tmp_path) -> list[str]:
    path = tmp_path / "cvpr_genotype.yaml"
    if not path.exists():
        ruas_genotype("cvpr", "ruas").save(path)
    return [str(path)]
