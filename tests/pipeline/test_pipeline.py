"""nas_llv.pipeline, the session as Python calls: search -> resume -> train -> evaluate -> enhance
-> export on a tiny recipe, in this process; each result checked against the files it wrote."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch.nn.functional as F

from conftest import RECIPES
from nas_llv import pipeline as p
from nas_llv.config import ConfigError
from nas_llv.data import write_image
from nas_llv.data.demo import darken, source_image
from nas_llv.results import is_finished, load_trajectory

ROOT = Path(__file__).resolve().parents[2]
TINY = ["search.epochs=2", "data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1",
        "device=cpu"]
TINY_TRAIN = ["train.steps=4", "train.val_every=2", "train.checkpoint_every=2", "data.demo_count=4",
              "data.demo_size=32", "data.crop=16", "data.batch_size=2", "device=cpu"]


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> dict:
    """One search stopped after 2 steps and resumed, one training of its genotype, one evaluation."""
    out = tmp_path_factory.mktemp("session")
    stopped = p.search(ROOT / "recipes/ruas_demo.yaml", TINY, output=out, stop_after=2)
    assert not is_finished(stopped.dir)
    searched = p.resume(stopped)  # the kind (search) read from the checkpoint
    trained = p.train(searched, ROOT / "recipes/ruas_demo_train.yaml", TINY_TRAIN, output=out, keep="best")
    pairs = out / "pairs"
    for sub in ("low", "high"):
        (pairs / sub).mkdir(parents=True)
    for i, name in enumerate(("astronaut", "coffee")):  # real photographs (scikit-image), darkened
        high = F.interpolate(source_image(name)[None].float() / 255, size=(40, 48), mode="area")[0]
        write_image(pairs / "low" / f"{i}.png", darken(high, 0.2))
        write_image(pairs / "high" / f"{i}.png", high)
    summary = p.evaluate(trained, pairs, lpips_net="none", repeats=1, warmup=0, device="cpu", progress=False)
    return {"out": out, "stopped": stopped, "searched": searched, "trained": trained, "pairs": pairs,
            "summary": summary}


def test_search_stops_and_resumes_in_the_same_run(session):
    searched = session["searched"]
    assert searched.dir == session["stopped"].dir and is_finished(searched.dir)
    trajectory = load_trajectory(searched.dir)
    assert isinstance(trajectory, pd.DataFrame) and trajectory.step.max() > 2
    assert (searched.dir / "genotype.yaml").is_file()


def test_train_takes_the_search_run_and_writes_a_model(session):
    trained = session["trained"]
    assert is_finished(trained.dir) and (trained.dir / "model.pt").is_file()
    assert trained.dir.parent == session["out"]


def test_evaluate_returns_the_summary_it_wrote(session):
    summary = session["summary"]
    record = json.loads((summary.out_dir / "summary.json").read_text())
    assert summary.out_dir == session["trained"].dir / "eval-pairs"
    assert summary.psnr == pytest.approx(record["psnr"]) and summary.ssim == pytest.approx(record["ssim"])
    assert summary.lpips is None and record["lpips_net"] is None
    assert list(summary.metrics.columns) == ["name", "psnr", "ssim", "lpips", "rmse"]
    assert len(summary.metrics) == 2 and summary.psnr == pytest.approx(summary.metrics.psnr.mean())
    assert summary.params == record["params"] > 0 and summary.latency_s > 0


def test_evaluate_refuses_an_unknown_option(session):
    with pytest.raises(ConfigError, match="unknown option lpips; allowed: .*lpips_net"):
        p.evaluate(session["trained"], session["pairs"], lpips="none")


def test_enhance_writes_every_image_and_export_reproduces_the_network(session, tmp_path):
    pytest.importorskip("onnxruntime")
    result = p.enhance(session["trained"], session["pairs"] / "low", tmp_path / "out", engine="fast", progress=False)
    assert sorted(f.name for f in result.written) == ["0.png", "1.png"] and not result.failed
    exported = p.export(session["trained"], tmp_path / "m.onnx")
    assert exported.path.is_file() and exported.reproduces and exported.max_difference < p.EXPORT_TOLERANCE


def test_resume_of_a_finished_run_runs_nothing(session):
    before = len(load_trajectory(session["trained"].dir))
    assert p.resume(session["trained"]).dir == session["trained"].dir
    assert len(load_trajectory(session["trained"].dir)) == before


@pytest.mark.parametrize("configured", [False, True])
def test_a_script_that_set_up_no_logging_sees_the_progress(tmp_path, configured):
    import subprocess
    import sys
    # a program that configured its own logging (here: to standard output) gets nothing extra on stderr
    script = (("import logging, sys; logging.basicConfig(stream=sys.stdout)\n" if configured else "")
              + "from nas_llv import pipeline as p\n"
              + f"p.search({str(RECIPES / 'ruas_demo.yaml')!r}, ['search.epochs=1', 'search.steps_per_epoch=1', "
              + "'search.val_batches=1', 'data.demo_count=4', 'data.demo_size=32', 'data.crop=16', "
              + f"'data.batch_size=1'], output={str(tmp_path)!r})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    said = "run folder" in done.stderr and "search finished" in done.stderr
    assert said != configured, done.stderr  # the program's own logging configuration wins
