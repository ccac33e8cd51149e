from __future__ import annotations

import csv
import logging
import random
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

import nas_llv.runs as runs
from nas_llv.config import ConfigError
from nas_llv.runs import Run, TrajectoryWriter, rng_state, set_rng_state

CONFIG = {"search": {"epochs": 2, "lr": 3e-4, "modules": ["scene", "denoise"]}, "name": "ruas", "seed": 0}


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


def _draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.normal(size=2).tolist(),
            torch.rand(3).tolist(), torch.randn(2).tolist())


def test_create_layout_config_and_log(tmp_path):
    level = logging.getLogger("nas_llv").level
    with Run.create(CONFIG, "ruas", root=tmp_path) as run:
        assert re.fullmatch(r"ruas-\d{8}-\d{6}", run.dir.name) and run.dir.parent == tmp_path
        assert yaml.safe_load((run.dir / "config.yaml").read_text()) == CONFIG
        assert run.config() == CONFIG
        logging.getLogger("nas_llv.something").info("marker-%d", 42)
    logging.getLogger("nas_llv.something").info("after-close")
    text = (run.dir / "log.txt").read_text()
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d.*nas_llv\.something: marker-42", text)
    assert "after-close" not in text
    assert logging.getLogger("nas_llv").level == level  # restored by close()


def test_runs_in_the_same_second_get_distinct_folders(tmp_path, monkeypatch):
    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2024, 5, 1, 12, 0, 0)

    monkeypatch.setattr(runs, "datetime", Frozen)
    made = [Run.create(CONFIG, "x", root=tmp_path) for _ in range(3)]
    for r in made:
        r.close()
    assert [r.dir.name for r in made] == ["x-20240501-120000", "x-20240501-120000-2", "x-20240501-120000-3"]


def test_bad_run_name(tmp_path):
    with pytest.raises(ConfigError, match="plain folder name"):
        Run.create(CONFIG, "a/b", root=tmp_path)


def test_open_appends_log_and_errors_name_the_folder(tmp_path):
    with Run.create(CONFIG, "r", root=tmp_path) as run:
        logging.getLogger("nas_llv.a").info("first")
    with Run.open(run.dir) as again:
        assert again.config() == CONFIG
        logging.getLogger("nas_llv.a").info("second")
        with pytest.raises(ConfigError, match=r"r-.*: no checkpoints/last.pt; nothing to resume"):
            again.load_checkpoint()
    text = (run.dir / "log.txt").read_text()
    assert text.index("first") < text.index("second")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'missing'}: no such run folder")):
        Run.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty: not a run folder \(config.yaml is missing\)"):
        Run.open(tmp_path / "empty")


def test_checkpoint_round_trip_with_rng(tmp_path):
    model = nn.Linear(3, 2)
    state = {"model": model.state_dict(), "step": 7,
             "opt": {"nested": {"t": torch.arange(4.0), "lr": [1e-3, 2e-3]}}, "config": CONFIG, "rng": rng_state()}
    expected = _draws()
    with Run.create(CONFIG, "c", root=tmp_path) as run:
        path = run.save_checkpoint(state)
        assert path == run.dir / "checkpoints" / "last.pt"
        back = run.load_checkpoint()  # weights_only: rng_state() holds no pickled numpy objects
    assert back["step"] == 7 and back["config"] == CONFIG and back["opt"]["nested"]["lr"] == [1e-3, 2e-3]
    assert torch.equal(back["opt"]["nested"]["t"], torch.arange(4.0))
    for k, v in model.state_dict().items():
        assert torch.equal(back["model"][k], v)
    set_rng_state(back["rng"])
    assert _draws() == expected


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    with Run.create(CONFIG, "a", root=tmp_path) as run:
        run.save_checkpoint({"step": 1, "w": torch.ones(3)})

        real_write = Path.write_bytes

        def torn_write(self, data):  # the serialised checkpoint reaches the file only in part
            real_write(self, data[:10])
            raise OSError("disk full")

        monkeypatch.setattr(Path, "write_bytes", torn_write)
        with pytest.raises(OSError, match="disk full"):
            run.save_checkpoint({"step": 2, "w": torch.zeros(3)})
        monkeypatch.undo()
        back = run.load_checkpoint()
    assert back["step"] == 1 and torch.equal(back["w"], torch.ones(3))
    assert sorted(p.name for p in (run.dir / "checkpoints").iterdir()) == ["last.pt"]


def test_rng_state_reproduces_draws():
    state = rng_state()
    first = _draws()
    _draws()
    set_rng_state(state)
    assert _draws() == first


def test_trajectory_widens_header_and_keeps_full_precision(tmp_path):
    path = tmp_path / "trajectory.csv"
    w = TrajectoryWriter(path)
    w.append({"step": 1, "train_loss": 1 / 3, "module": "scene"})
    w.append({"step": 2, "train_loss": np.float64(0.1), "module": "scene", "prob/scene.c1_d/skip": torch.tensor(0.7)})
    w.append({"step": 3, "train_loss": None})
    header, rows = _rows(path)
    assert header == ["step", "train_loss", "module", "prob/scene.c1_d/skip"]
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert float(rows[0]["train_loss"]) == 1 / 3 and rows[1]["train_loss"] == "0.1"
    assert float(rows[1]["prob/scene.c1_d/skip"]) == torch.tensor(0.7).item()
    assert rows[0]["prob/scene.c1_d/skip"] == "" and rows[2]["module"] == "" and rows[2]["train_loss"] == ""
    assert TrajectoryWriter(path).fields == header  # a reopened writer keeps the header
    assert [p.name for p in tmp_path.iterdir()] == ["trajectory.csv"]  # no temp files left
    with pytest.raises(TypeError, match="prob/x/y.*shape"):
        w.append({"step": 4, "prob/x/y": torch.ones(2)})


def test_truncate_after_and_torn_last_line(tmp_path):
    path = tmp_path / "trajectory.csv"
    w = TrajectoryWriter(path)
    for step in range(1, 6):
        w.append({"step": step, "lr": step * 0.1})
    w.truncate_after(3)
    w.append({"step": 4, "lr": 9.0})
    assert [(r["step"], r["lr"]) for r in _rows(path)[1]] == [("1", "0.1"), ("2", "0.2"), ("3", "0.30000000000000004"),
                                                            ("4", "9.0")]
    with path.open("a") as f:
        f.write("5,0.")  # killed mid-append
    w2 = TrajectoryWriter(path)
    w2.append({"step": 5, "lr": 1.5})
    assert [r["step"] for r in _rows(path)[1]] == ["1", "2", "3", "4", "5"]


def _train(run: Run, steps: range, crash_after: int | None = None) -> None:
    """A toy loop: a random number per step, a checkpoint every 3 steps."""
    for step in steps:
        run.trajectory_writer.append({"step": step, "epoch": 0, "train_loss": torch.rand(()).item(), "r": random.random()})
        if step % 3 == 0:
            run.save_checkpoint({"step": step, "rng": rng_state()})
        if step == crash_after:
            return


def test_resumed_trajectory_equals_uninterrupted(tmp_path):
    torch.manual_seed(1), random.seed(1)
    with Run.create(CONFIG, "full", root=tmp_path) as full:
        _train(full, range(1, 8))
    torch.manual_seed(1), random.seed(1)
    with Run.create(CONFIG, "cut", root=tmp_path) as cut:
        _train(cut, range(1, 8), crash_after=5)
    torch.manual_seed(123)
    with Run.open(cut.dir) as resumed:
        ckpt = resumed.load_checkpoint()
        resumed.trajectory_writer.truncate_after(ckpt["step"])
        set_rng_state(ckpt["rng"])
        _train(resumed, range(ckpt["step"] + 1, 8))
    assert (cut.dir / "trajectory.csv").read_bytes() == (full.dir / "trajectory.csv").read_bytes()


@pytest.mark.parametrize("command", ["search", "train"])
def test_progress_reaches_the_log_file(tmp_path, monkeypatch, command):
    """Written to a file (no terminal, no bar), a run still shows its progress at a steady interval."""
    import nas_llv.job
    from conftest import RECIPES
    from nas_llv.cli import main
    from nas_llv.export.ruas_import import ruas_genotype

    monkeypatch.setattr(nas_llv.job, "PROGRESS_EVERY", 0.0)  # every step, instead of every 15 s
    tiny = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1"]
    if command == "search":
        args = ["search", str(RECIPES / "ruas_demo.yaml"), "search.epochs=1", "search.steps_per_epoch=2",
                "search.val_batches=1", *tiny]
    else:
        genotype = ruas_genotype("cvpr", "ruas").save(tmp_path / "g.yaml")
        args = ["train", str(genotype), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), "train.steps=3",
                "train.val_batches=1", *tiny]
    assert main([*args, "--output", str(tmp_path / "runs")]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    lines = [line for line in (run / "log.txt").read_text().splitlines() if f"{command}: step" in line]
    assert len(lines) >= 2 and "s/step" in lines[-1] and "left" in lines[-1]


def test_a_run_reads_itself_back(tmp_path):
    from conftest import RECIPES
    from nas_llv import pipeline as p
    from nas_llv.runview import RunFolder
    from nas_llv.sweep import genotype_hash
    tiny = ["search.epochs=2", "search.steps_per_epoch=1", "search.val_batches=1", "data.demo_count=4",
            "data.demo_size=32", "data.crop=16", "data.batch_size=1"]
    run = p.search(str(RECIPES / "ruas_demo.yaml"), tiny, output=tmp_path, stop_after=2)
    assert (run.kind, run.status, run.steps) == ("search", "stopped at step 2", 2)
    assert run.genotype is None and run.genotype_hash is None and run.model_file is None
    assert repr(run) == f"Run({str(run.dir)!r}, search, stopped at step 2)"
    run = p.resume(run)
    assert run.status == "finished" and run.steps == 4 and run.genotype_file == run.dir / "genotype.yaml"
    written = yaml.safe_load(run.genotype_file.read_text())["genotype"]
    assert run.genotype == written and len(written) == 14 and run.genotype_hash == genotype_hash(written)
    assert repr(run) == f"Run({str(run.dir)!r}, search, finished, 4 steps, genotype {run.genotype_hash})"
    assert isinstance(run.trajectory, pd.DataFrame) and {"step", "edge", "op", "prob"} <= set(run.trajectory.columns)
    assert run.trajectory_frame(wide=True)["step"].max() == 4 and len(run.trajectory) == 4 * 14 * 7
    assert run.trajectory_writer.path == run.dir / "trajectory.csv"  # what a job appends through
    assert repr(RunFolder(run.dir)) == repr(run).replace("Run(", "RunFolder(", 1)  # the same, read only
    assert Run(tmp_path / "none").status == "not started"
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "trajectory.csv").write_text("no step column\n1\n")
    assert repr(RunFolder(tmp_path / "torn")) == f"RunFolder({str(tmp_path / 'torn')!r}, unreadable)"
