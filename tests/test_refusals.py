"""Bad input beyond the corpus of tests/test_bad_input.py (issue 27): ONNX files the engine cannot
feed, an unknown engine from Python, run folders that cannot be written, and refused or no-op
resumes. Each is one line (exit 2 on the command line, a ConfigError in Python) and leaves the
files as they were, bytes and modification times."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError, load_yaml
from nas_llv.export.modelfile import save_model
from nas_llv.space.genotype import Genotype
from nas_llv.space.spec import load_space


def _snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every path under ``root``: (its bytes, None for a folder; its modification time in ns)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in [root, *root.rglob("*")]}


def _one_line_exit_2(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _pairs(root: Path, size: int = 20) -> Path:
    for sub in ("low", "high"):
        (root / sub).mkdir(parents=True)
        Image.fromarray(np.full((size, size + 4, 3), 90, np.uint8)).save(root / sub / "a.png")
    return root


def _model(path: Path) -> Path:
    space = load_space("ruas_denoise")
    geno = Genotype({"type": "single"}, {"net": space}, {e.label: "conv_3x3" for e in space.cell.searchable})
    save_model(path, geno, geno.build(channels=3, repeat=1), build={"channels": 3, "repeat": 1})
    return path


# -- ONNX files the onnx engine cannot feed ------------------------------------------------------

class _Conv(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv(y)


class _Reshaped(nn.Module):
    """Any size in its declared input, but a graph that only runs on 16x16 images (a traced reshape)."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(1, 3, 16, 16) * 2


def _onnx(path: Path, net: nn.Module, shape: tuple[int, ...], dynamic: bool = True) -> Path:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    axes = {"low": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(*shape),), str(path), input_names=["low"], output_names=["x"],
                          dynamo=False, dynamic_axes=axes)
    return path


@pytest.mark.parametrize("command", ["enhance", "eval"])
@pytest.mark.parametrize("graph, expect", [
    ("gray", "its input 'low' has shape (batch, 1, height, width): it takes 1-channel images, not RGB"),
    ("fixed", "its input 'low' has shape (1, 3, 32, 32): it takes 32x32 images only"),
])
def test_an_onnx_file_of_another_input_shape_is_one_line(tmp_path, monkeypatch, capsys, command, graph, expect):
    monkeypatch.chdir(tmp_path)
    net, shape, dynamic = {"gray": (_Conv(1), (1, 1, 16, 16), True), "fixed": (_Conv(3), (1, 3, 32, 32), False)}[graph]
    _onnx(tmp_path / "m.onnx", net, shape, dynamic)
    _pairs(tmp_path / "p")
    argv = (["enhance", "m.onnx", "p/low", "out"] if command == "enhance" else
            ["eval", "m.onnx", "--data", "p", "--lpips-net", "none", "-q"])
    before = _snapshot(tmp_path)
    line = _one_line_exit_2([*argv, "--engine", "onnx"], capsys)
    assert f"m.onnx: {expect}" in line and "(1, 3, H, W)" in line
    assert _snapshot(tmp_path) == before


def test_an_onnx_graph_that_fails_on_an_image_names_the_file_and_both_shapes(tmp_path, monkeypatch, capsys):
    from nas_llv.export.onnx import OnnxNet

    path = _onnx(tmp_path / "m.onnx", _Reshaped(), (1, 3, 16, 16))
    with pytest.raises(ConfigError) as info:
        OnnxNet(path)(torch.rand(1, 3, 20, 24))
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "(1, 3, 20, 24)" in message and "(batch, 3, height, width)" in message
    monkeypatch.chdir(tmp_path)
    _pairs(tmp_path / "p")
    before = _snapshot(tmp_path)
    line = _one_line_exit_2(["eval", "m.onnx", "--data", "p", "--lpips-net", "none", "-q", "--engine", "onnx"], capsys)
    assert "m.onnx: onnxruntime cannot run it on an image of shape (1, 3, 20, 24)" in line
    assert _snapshot(tmp_path) == before


# -- an unknown engine from Python ------------------------------------------------------------------

def test_evaluate_with_an_unknown_engine_raises_config_error_naming_the_engines(tmp_path):
    from nas_llv import pipeline as p

    model, pairs = _model(tmp_path / "m.pt"), _pairs(tmp_path / "p")
    before = _snapshot(tmp_path)
    with pytest.raises(ConfigError, match=r"unknown engine 'bogus'; allowed: compiled, fast, onnx, torch"):
        p.evaluate(model, pairs, engine="bogus", lpips_net="none")
    with pytest.raises(KeyError):  # still a KeyError for code that looks names up
        p.enhance(model, pairs / "low", tmp_path / "out", engine="bogus")
    assert _snapshot(tmp_path) == before


# -- run folders: refused resumes, finished runs, folders that cannot be written ------------------

SEARCH = ["search.epochs=1", "search.steps_per_epoch=2", "search.val_batches=1", "search.checkpoint_every=1",
          "data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "device=cpu"]
TRAIN = ["train.steps=2", "train.val_every=1", "train.val_batches=1", "train.checkpoint_every=1", "train.keep=best",
         "data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "device=cpu"]


def _made(argv: list[str], output: Path) -> Path:
    """The run folder ``main(argv + --output output)`` made there."""
    assert main([*argv, "--output", str(output)]) == 0
    (run,) = [p for p in output.iterdir() if (p / "config.yaml").is_file()]
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A finished search, the same search stopped after its first step, and a finished training."""
    root = tmp_path_factory.mktemp("runs")
    searched = _made(["search", str(RECIPES / "ruas_demo.yaml"), *SEARCH], root / "searched")
    stopped = _made(["search", str(RECIPES / "ruas_demo.yaml"), *SEARCH, "--stop-after", "1"], root / "stopped")
    trained = _made(["train", str(searched), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), *TRAIN],
                    root / "trained")
    return {"searched": searched, "stopped": stopped, "trained": trained}


def _copy(src: Path, dst: Path) -> Path:
    """A copy of run ``src`` (times kept), with the marks of a killed writer: a temp file of an
    interrupted checkpoint and a torn last trajectory line."""
    run = Path(shutil.copytree(src, dst))
    (run / "checkpoints" / ".last.pt.abcd1234.tmp").write_bytes(b"torn")
    with (run / "trajectory.csv").open("a") as f:
        f.write("99,0.")
    return run


def _unchanged(run: Path, before: dict) -> None:
    """``run`` holds what it held: every file's bytes and time; the lock file (taken while the run
    was read, emptied when let go) its bytes."""
    after = _snapshot(run)
    assert after.keys() == before.keys()
    for name, (data, mtime) in before.items():
        assert after[name][0] == data, name
        assert name == ".lock" or after[name][1] == mtime, name


def _refit(run: Path) -> None:
    last = run / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["network"] = {"nothing": torch.zeros(1)}
    torch.save(state, last)


REFUSALS = {  # name: (command, what is done to the copy, a fragment of the one line)
    "another-kind": ("train", None, "a search run, not a train run"),
    "torn-checkpoint": ("search", lambda r: (r / "checkpoints/last.pt").write_bytes(b"PK\x03\x04"), "last.pt"),
    "does-not-fit": ("search", _refit, "does not fit this run's network"),
    "bad-config": ("search", lambda r: (r / "config.yaml").write_text(
        (r / "config.yaml").read_text().replace("epochs: 1", "epochs: 0")), "epochs=0 must be >= 1"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_resume_leaves_the_run_as_it_was(runs, tmp_path, capsys, case):
    command, edit, expect = REFUSALS[case]
    run = _copy(runs["stopped"], tmp_path / "run")
    if edit is not None:
        edit(run)
    before = _snapshot(run)
    line = _one_line_exit_2([command, "--resume", str(run)], capsys)
    assert expect in line
    _unchanged(run, before)  # log.txt not appended to, the temp file and the torn line left for the real resume


@pytest.mark.parametrize("kind", ["searched", "trained"])
def test_a_finished_run_resumed_changes_nothing(runs, tmp_path, capsys, caplog, kind):
    from nas_llv import pipeline as p

    run = Path(shutil.copytree(runs[kind], tmp_path / "run"))
    before = _snapshot(run)
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="nas_llv"):
        assert main(["search" if kind == "searched" else "train", "--resume", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run)
    (said,) = [r.getMessage() for r in caplog.records if str(run) in r.getMessage()]
    assert said.startswith(f"{run}: finished at step") and said.endswith("nothing to do")
    assert p.resume(run).dir == run
    _unchanged(run, before)  # genotype.yaml, model.pt, model_best.pt, log.txt: the same bytes and times


def test_a_search_stopped_before_its_genotype_was_written_writes_it_on_resume(runs, tmp_path):
    from nas_llv import pipeline as p

    run = Path(shutil.copytree(runs["searched"], tmp_path / "run"))
    (run / "genotype.yaml").unlink()
    p.resume(run)
    written = load_yaml(runs["searched"] / "genotype.yaml")
    written["meta"]["run"] = run.name  # the one entry that names the folder
    assert load_yaml(run / "genotype.yaml") == written


@pytest.fixture
def read_only(tmp_path):
    """``make(src)``: a copy of ``src`` on a tmpfs mounted read-only (skips where mounting is not allowed)."""
    mounts = []

    def make(src: Path) -> Path:
        mnt = tmp_path / f"ro{len(mounts)}"
        mnt.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None or _mount("-t", "tmpfs", "tmpfs", mnt):
            pytest.skip("mounting a read-only tmpfs needs root and mount(8)")
        mounts.append(mnt)
        run = Path(shutil.copytree(src, mnt / src.name))
        if _mount("-o", "remount,ro", mnt):
            pytest.skip("cannot remount the tmpfs read-only")
        return run

    yield make
    for mnt in mounts:
        subprocess.run(["umount", str(mnt)], check=False)


def _mount(*args: object) -> int:
    return subprocess.run(["mount", *map(str, args)], capture_output=True).returncode


@pytest.mark.parametrize("how", ["search --resume", "derive --draw", "pipeline.resume", "open() itself"])
def test_a_run_folder_that_cannot_be_written_is_one_line(runs, read_only, capsys, monkeypatch, how):
    run = read_only(runs["stopped" if how != "derive --draw" else "searched"])
    expect = f"{run}: cannot write in this run folder (read-only file system)"
    if how == "pipeline.resume":
        from nas_llv import pipeline as p

        with pytest.raises(ConfigError, match=re.escape(expect)):
            p.resume(run)
        return
    if how == "open() itself":  # a folder that looks writable, whose lock file cannot be opened
        import nas_llv.runlock

        monkeypatch.setattr(nas_llv.runlock, "unwritable", lambda folder: None)
    argv = ["derive", str(run), "--draw"] if how == "derive --draw" else ["search", "--resume", str(run)]
    assert expect in _one_line_exit_2(argv, capsys)
