"""Faults an operator meets (issue 30): a second writer of one run folder, a lock a killed process
left, and SIGTERM handled like Ctrl-C (step finished, checkpoint, resume hint, exit 143; mid-training:
tests/retrain/test_trainer.py's interrupt test, for both signals)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import RECIPES
from nas_llv.config import ConfigError
from nas_llv.runlock import RunLock
from nas_llv.runs import Run
from nas_llv.signals import Terminated

TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "search.val_batches=1",
        "search.epochs=3", "search.steps_per_epoch=2", "search.checkpoint_every=100"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas_llv", *args, "--threads", "1"], capture_output=True,
                          text=True, env=ENV, timeout=300)


def _trajectory(run) -> pd.DataFrame:
    return pd.read_csv(run / "trajectory.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The demo search run through: its folder."""
    whole = _cli("search", str(RECIPES / "ruas_demo.yaml"), *TINY, "--output", str(tmp_path_factory.mktemp("whole")))
    assert whole.returncode == 0, whole.stderr
    return Path(whole.stdout.strip())


@pytest.fixture
def stopped(tmp_path, uninterrupted):
    """The same search stopped after 2 steps: (its folder, the uninterrupted run's folder)."""
    part = _cli("search", str(RECIPES / "ruas_demo.yaml"), *TINY, "--output", str(tmp_path / "part"), "--stop-after", "2")
    assert part.returncode == 0, part.stderr
    return Path(part.stdout.strip()), uninterrupted


def _holder(run_dir) -> subprocess.Popen:
    """Another process that opens the run for writing and holds it."""
    code = ("import sys, time; from nas_llv.runs import Run; Run.open(sys.argv[1]); "
            "print('holding', flush=True); time.sleep(120)")
    p = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "holding"
    return p


def test_a_second_writer_is_refused_in_one_line_and_a_killed_ones_lock_is_taken_over(stopped):
    run, whole = stopped
    rows_before = (run / "trajectory.csv").read_text()
    holder = _holder(run)
    try:
        refused = _cli("search", "--resume", str(run))
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert f"PID {holder.pid}" in line and "started" in line and "another nas-llv process" in line
        assert (run / "trajectory.csv").read_text() == rows_before  # the refused writer changed nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    resumed = _cli("search", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    assert f"took over the lock of PID {holder.pid}" in resumed.stderr
    pd.testing.assert_frame_equal(_trajectory(whole), _trajectory(run))  # identical to an uninterrupted run
    assert (run / ".lock").read_text() == ""  # a clean end leaves no holder


def test_the_lock_is_shared_within_one_process_and_released_by_the_last_holder(tmp_path):
    first = RunLock(tmp_path).acquire()
    second = RunLock(tmp_path).acquire()
    first.release()
    code = "import sys; from nas_llv.runlock import RunLock; RunLock(sys.argv[1]).acquire()"
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True).returncode != 0
    second.release()
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True).returncode == 0


def test_a_refused_resume_raises_config_error_in_python(stopped):
    run, _ = stopped
    holder = _holder(run)
    try:
        with pytest.raises(ConfigError, match=f"PID {holder.pid}"):
            Run.open(run)
    finally:
        holder.kill()
        holder.wait()


def test_sigterm_finishes_the_step_checkpoints_exits_143_and_resumes_exactly(tmp_path, stopped):
    _, whole = stopped
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "nas_llv", "search", str(RECIPES / "ruas_demo.yaml"), *TINY,
                          "--output", str(out), "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=ENV)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("*/trajectory.csv")):  # the first step is done
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=120)
    (run,) = out.iterdir()
    if p.returncode == 0:
        pytest.skip("the search ended before SIGTERM arrived")
    assert p.returncode == 143, stderr
    assert "SIGTERM: stopping after this step" in stderr and "continue with:" in stderr
    assert "Traceback" not in stderr
    assert (run / "checkpoints" / "last.pt").is_file()
    resumed = _cli("search", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    pd.testing.assert_frame_equal(_trajectory(whole), _trajectory(run))


# -- a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 64 KiB tmpfs (root can mount one; skipped elsewhere), unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def _fill(mnt, leave: int = 4096) -> None:
    """Fill ``mnt`` until ``leave`` bytes (whole 4 KiB pages) are free."""
    import shutil
    (mnt / "filler").write_bytes(b"\0" * (shutil.disk_usage(mnt).free - leave))
    assert shutil.disk_usage(mnt).free == leave


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = [l for l in done.stderr.splitlines() if "error:" in l]
    assert "no space left on" in line and "MB needed" in line and "MB free" in line, line
    return line


def test_a_search_on_a_full_disk_fails_in_one_line_and_leaves_no_run_folder(small_fs):
    done = _cli("search", str(RECIPES / "ruas_demo.yaml"), *TINY, "--output", str(small_fs / "r"))
    assert "checkpoints/last.pt" in _one_error_line(done)  # the config and trajectory fit, the checkpoint not
    assert list((small_fs / "r").iterdir()) == []  # nothing to resume: no folder is left


@pytest.fixture
def model_and_pairs(tmp_path):
    from PIL import Image
    from nas_llv.export.modelfile import save_model
    from nas_llv.export.ruas_import import ruas_genotype
    genotype = ruas_genotype("cvpr", "ruas_s")
    model = save_model(tmp_path / "model.pt", genotype, genotype.build())
    g = __import__("numpy").random.default_rng(0)
    for sub, scale in (("low", 60), ("high", 255)):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
        for i in range(2):
            Image.fromarray((g.random((24, 24, 3)) * scale).astype("uint8")).save(tmp_path / "pairs" / sub / f"{i}.png")
    return model, tmp_path / "pairs"


def test_eval_on_a_full_disk_writes_both_files_or_neither(small_fs, model_and_pairs):
    model, pairs = model_and_pairs
    _fill(small_fs)  # room for metrics.csv, none for summary.json
    out = small_fs / "eval"
    done = _cli("eval", str(model), "--data", str(pairs), "--lpips-net", "none", "--repeats", "1", "--warmup", "0",
                "-q", "-o", str(out))
    assert "summary.json" in _one_error_line(done)
    assert not (out / "metrics.csv").exists() and not (out / "summary.json").exists()


def test_export_and_a_model_write_on_a_full_disk_fail_in_one_line(small_fs, model_and_pairs):
    model, _ = model_and_pairs
    _fill(small_fs, leave=0)
    assert "net.onnx" in _one_error_line(_cli("export", str(model), "-o", str(small_fs / "net.onnx")))
    assert not list(small_fs.glob(".*.tmp"))


def test_torchs_wordless_write_error_on_a_full_disk_is_named(small_fs, tmp_path):
    from nas_llv.atomic import atomic_write
    from nas_llv.diskfull import DiskFull

    def torch_like(path):
        path.write_bytes(b"x")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    _fill(small_fs, leave=0)
    with pytest.raises(DiskFull, match="no space left on .* writing .*ckpt.pt"):
        atomic_write(small_fs / "ckpt.pt", torch_like)
    with pytest.raises(RuntimeError, match="unexpected pos"):  # with room to spare it is not put down to space
        atomic_write(tmp_path / "ckpt.pt", torch_like)
    assert not list(small_fs.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_two_resumes_started_together_one_writes_and_the_other_is_refused(stopped):
    run, whole = stopped
    both = [subprocess.Popen([sys.executable, "-m", "nas_llv", "search", "--resume", str(run), "--threads", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in both]
    codes = sorted(rc for rc, _ in results)
    if codes == [0, 0]:
        pytest.skip("the first resume ended before the second one opened the run")
    assert codes == [0, 2], results
    assert "another nas-llv process is writing this run" in next(err for rc, err in results if rc == 2)
    pd.testing.assert_frame_equal(_trajectory(whole), _trajectory(run))  # one writer: no repeated rows


def test_derive_writing_into_a_run_waits_its_turn(uninterrupted):
    run = uninterrupted
    holder = _holder(run)
    try:
        refused = _cli("derive", str(run), "--draw", "--no-flops")
        assert refused.returncode == 2 and f"PID {holder.pid}" in refused.stderr
        assert not (run / "cell_scene.png").exists()
    finally:
        holder.kill()
        holder.wait()
    assert _cli("derive", str(run), "--draw", "--no-flops").returncode == 0
    assert (run / "cell_scene.png").is_file()


def test_a_second_sigterm_stops_at_once():
    from nas_llv.runs import deferred_interrupt
    with deferred_interrupt() as flag:
        os.kill(os.getpid(), signal.SIGTERM)  # the first: the step may finish
        assert flag.pending == signal.SIGTERM
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)  # the second: at once
            time.sleep(1)
    with pytest.raises(Terminated):
        flag.check()


def test_a_file_system_without_locks_is_said_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    import fcntl

    def no_locks(fd, op):
        raise OSError(37, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    lock = RunLock(tmp_path).acquire()
    assert "cannot lock the run folder here (No locks available)" in caplog.text
    assert not lock.held
    lock.release()
