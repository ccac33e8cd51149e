"""One GPU, many trials (issue 29, item 5): ``nas-llv sweep --gpus-per-trial 0.25`` runs four seeds at
once on one GPU, as docs/scale.md tells for RUAS Table 4 on one card; 0.5 runs two at a time.

Ray is started with one declared GPU (``num_gpus=1``: Ray schedules by the declared count, so this
runs without a GPU too; on a CUDA machine the trials really share the card). Each trial is the real
one (a tiny demo search) behind a gate: it waits until four trials have started or a deadline passes,
and records how many ran at that moment and the GPU Ray gave it."""
from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

import pytest

from conftest import RECIPES
from nas_llv.cli import main

TINY = ["search.epochs=1", "search.steps_per_epoch=1", "search.val_batches=1", "data.demo_count=4",
        "data.demo_size=32", "data.crop=16", "data.batch_size=1"]


@pytest.fixture(scope="module")
def ray_one_gpu():
    """An embedded Ray with 4 CPUs and 1 GPU declared: four 1-CPU trials fit, the GPU decides."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=4, num_gpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2**20, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def gated_trials(monkeypatch, gate: Path, deadline_s: float) -> None:
    """Every trial of the next sweep waits at ``gate`` until 4 trials run at once or ``deadline_s``
    passed, writes {running at most, the GPU ids Ray gave it, CUDA_VISIBLE_DEVICES}, then runs."""
    from nas_llv.pipeline import trials

    real = trials.run_trial  # pickled by reference: the Ray worker calls the real trial
    gate.mkdir()

    def gated(spec: dict) -> dict:  # a local function: Ray pickles it by value
        import os

        import ray

        index = spec["trial"]["index"]
        (gate / f"started-{index}").touch()
        end, peak = time.monotonic() + deadline_s, 0
        while time.monotonic() < end:
            peak = max(peak, len(list(gate.glob("started-*"))) - len(list(gate.glob("ended-*"))))
            if peak >= 4:
                break
            time.sleep(0.05)
        (gate / f"seen-{index}.json").write_text(json.dumps(
            {"peak": peak, "gpus": [str(g) for g in ray.get_gpu_ids()], "cvd": os.environ.get("CUDA_VISIBLE_DEVICES")}))
        try:
            return real(spec)
        finally:
            (gate / f"ended-{index}").touch()

    monkeypatch.setattr(trials, "run_trial", gated)


def seen(gate: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(gate.glob("seen-*.json"))]


def statuses(out: Path) -> list[str]:
    (sweep,) = out.iterdir()
    with (sweep / "summary.csv").open(newline="") as fh:
        return [row["status"] for row in csv.DictReader(fh)]


def test_a_quarter_gpu_per_trial_runs_four_seeds_at_once_on_one_gpu(ray_one_gpu, tmp_path, monkeypatch):
    gated_trials(monkeypatch, tmp_path / "gate", deadline_s=300)  # leaves as soon as all four run
    out = tmp_path / "out"
    assert main(["sweep", str(RECIPES / "ruas_demo.yaml"), "--seeds", "0-3", "--gpus-per-trial", "0.25",
                 "--output", str(out), *TINY]) == 0
    assert statuses(out) == ["finished"] * 4
    trials = seen(tmp_path / "gate")
    assert [t["peak"] for t in trials] == [4, 4, 4, 4]  # all four ran at the same time
    assert all(t["gpus"] == ["0"] and t["cvd"] == "0" for t in trials), trials  # on the one GPU


def test_half_a_gpu_per_trial_runs_two_at_a_time(ray_one_gpu, tmp_path, monkeypatch):
    """The counter-check: the same gate never sees more than two trials at once."""
    gated_trials(monkeypatch, tmp_path / "gate", deadline_s=5)
    out = tmp_path / "out"
    assert main(["sweep", str(RECIPES / "ruas_demo.yaml"), "--seeds", "0-3", "--gpus-per-trial", "0.5",
                 "--output", str(out), *TINY]) == 0
    assert statuses(out) == ["finished"] * 4
    assert max(t["peak"] for t in seen(tmp_path / "gate")) <= 2
