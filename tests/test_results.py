from __future__ import annotations

import io
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nas_llv.config import ConfigError
from nas_llv.evaluation.compare import label_of
from nas_llv.results import (CSV_FLOATS, alphas_figure, final_probs, is_finished, load_runs, load_trajectory,
                             load_trajectory_wide, plot_alphas, plot_hyper, y_limits)
from nas_llv.runs import Run

EDGES = {"scene.c1_d": ["skip", "conv_3x3", "resconv_1x1"], "scene.c2_r": ["skip", "conv_3x3"],
         "denoise.c1_d": ["skip", "dilconv_3x3", "conv_1x1", "resconv_3x3"]}
N_PROBS = sum(map(len, EDGES.values()))
STEPS = 6


def _search_run(root, name="ruas", steps=STEPS, hyper=True) -> tuple[Run, list[dict]]:
    """A synthetic search trajectory written with the real writer; probs are softmaxes."""
    rows = []
    with Run.create({"name": name}, name, root=root) as run:
        for step in range(1, steps + 1):
            row = {"step": step, "epoch": (step - 1) // 3, "module": "scene" if step % 2 else "denoise",
                   "phase": "search", "train_loss": 1.0 / step, "val_loss": 2.0 / step, "lr": 1e-3,
                   "seconds": 0.5 * step}
            for edge, ops in EDGES.items():
                for op, p in zip(ops, torch.softmax(torch.randn(len(ops), dtype=torch.float64), 0).tolist()):
                    row[f"prob/{edge}/{op}"] = p
            if hyper:
                row.update({"hyper/l1": 1.0 - 0.05 * step, "hyper/ssim": 1.0 + 0.1 * step})
            row.update({"loss/l1": 0.3 / step, "metric/psnr": 10.0 + step})
            run.trajectory_writer.append(row)
            rows.append(row)
    return run, rows


def _train_run(root) -> Run:
    with Run.create({"name": "t"}, "train", root=root) as run:
        for step in range(1, 4):
            run.trajectory_writer.append({"step": step, "epoch": 0, "module": "weights", "phase": "train",
                                   "train_loss": 0.1 * step, "metric/psnr": 20.0 + step})
    return run


def test_tidy_shape_columns_and_sums(tmp_path):
    run, rows = _search_run(tmp_path)
    tidy = load_trajectory(run.dir)
    assert len(tidy) == STEPS * N_PROBS
    assert list(tidy.columns[:7]) == ["step", "epoch", "module", "phase", "edge", "op", "prob"]
    assert {"train_loss", "val_loss", "lr", "seconds", "hyper/l1", "hyper/ssim", "loss/l1", "metric/psnr"} <= set(tidy)
    assert not any(c.startswith("prob/") for c in tidy.columns)
    assert set(tidy["edge"]) == set(EDGES)
    assert all(set(tidy.loc[tidy.edge == e, "op"]) == set(ops) for e, ops in EDGES.items())
    sums = tidy.groupby(["step", "edge"])["prob"].sum()
    assert len(sums) == STEPS * len(EDGES) and np.allclose(sums, 1.0, atol=1e-12)
    # full-precision round trip: exactly the floats that were written
    for step, row in enumerate(rows, start=1):
        got = tidy[(tidy.step == step) & (tidy.edge == "scene.c1_d") & (tidy.op == "conv_3x3")]
        assert got["prob"].tolist() == [row["prob/scene.c1_d/conv_3x3"]]
        assert got["module"].item() == row["module"] and got["hyper/ssim"].item() == row["hyper/ssim"]


def test_wide_frame_and_training_run(tmp_path):
    run, _ = _search_run(tmp_path)
    wide = load_trajectory_wide(run.dir)
    assert len(wide) == STEPS and sum(c.startswith("prob/") for c in wide.columns) == N_PROBS
    train = _train_run(tmp_path)
    pd.testing.assert_frame_equal(load_trajectory(train.dir), load_trajectory_wide(train.dir))
    assert "prob" not in load_trajectory(train.dir)
    with pytest.raises(ConfigError, match="no prob/<edge>/<op> columns"):
        plot_alphas(train.dir, tmp_path / "a.png")
    with pytest.raises(ConfigError, match="no hyper/<name> columns"):
        plot_hyper(train.dir, tmp_path / "h.png")


def test_missing_folder_and_trajectory_errors(tmp_path):
    with pytest.raises(ConfigError, match="nope: no such run folder"):
        load_trajectory(tmp_path / "nope")
    with Run.create({}, "fresh", root=tmp_path) as run:
        pass
    with pytest.raises(ConfigError, match=r"fresh-.*: no trajectory.csv"):
        load_trajectory(run.dir)
    with pytest.raises(ConfigError, match="no run folders match"):
        load_runs(str(tmp_path / "zzz-*"))


def test_load_runs_adds_run_column(tmp_path):
    a, _ = _search_run(tmp_path, "a")
    b, _ = _search_run(tmp_path, "b", steps=3)
    with Run.create({}, "c", root=tmp_path):
        pass  # no trajectory yet: skipped
    frame = load_runs(str(tmp_path / "*"))
    assert frame.columns[0] == "run"
    assert frame.groupby("run").size().to_dict() == {a.dir.name: STEPS * N_PROBS, b.dir.name: 3 * N_PROBS}
    with pytest.raises(ConfigError, match="holds 2 runs"):
        final_probs(frame)
    assert final_probs(frame[frame.run == b.dir.name]).shape == (len(EDGES), len({o for ops in EDGES.values() for o in ops}))


def test_final_probs_are_last_step(tmp_path):
    run, rows = _search_run(tmp_path)
    table = final_probs(run.dir)
    assert list(table.index) == list(EDGES)
    assert table.loc["denoise.c1_d", "dilconv_3x3"] == rows[-1]["prob/denoise.c1_d/dilconv_3x3"]
    assert math.isnan(table.loc["scene.c2_r", "resconv_1x1"])
    assert np.allclose(table.sum(axis=1, skipna=True), 1.0)


def _png_pixels(path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def test_plots_are_non_blank_pngs(tmp_path):
    run, _ = _search_run(tmp_path)
    for path in (plot_alphas(run.dir, tmp_path / "alphas.png"),
                 plot_alphas(load_trajectory_wide(run.dir), tmp_path / "scene.png", module="scene"),
                 plot_hyper(run.dir, tmp_path / "hyper.png")):
        pixels = _png_pixels(path)
        assert pixels.min() < 128 < pixels.max()  # dark lines and text on a white page
        assert (pixels < 250).mean() > 0.01
    # three edge panels against two for the scene module alone: the full figure is wider
    assert _png_pixels(tmp_path / "alphas.png").shape[1] > _png_pixels(tmp_path / "scene.png").shape[1]
    with pytest.raises(ConfigError, match="module 'nope'.*edge prefixes are denoise, scene"):
        plot_alphas(run.dir, tmp_path / "x.png", module="nope")
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["alphas.png", "hyper.png", "scene.png"]


# -- plots follow the data ------------------------------------------------------------------------
def test_y_limits_fit_the_data_with_a_margin():
    assert y_limits(np.array([0.30, 0.40])) == pytest.approx((0.295, 0.405))
    lo, hi = y_limits(pd.Series([0.25, 0.25]))  # a flat line: widened to min_span, centred
    assert (lo + hi) / 2 == pytest.approx(0.25) and hi - lo == pytest.approx(1.1e-3)


def test_alpha_panels_follow_the_data(tmp_path):
    run, _ = _search_run(tmp_path)
    tidy = load_trajectory(run.dir)
    fig = alphas_figure(run.dir)
    assert len(fig.axes) == 2 * len(EDGES)
    gain = tidy["prob"] - 1.0 / tidy.groupby("edge")["op"].transform("nunique")
    for i, edge in enumerate(EDGES):
        probs = tidy.loc[tidy.edge == edge, "prob"]
        assert fig.axes[2 * i].get_title() == edge
        assert fig.axes[2 * i].get_ylim() == pytest.approx(y_limits(probs))
        assert fig.axes[2 * i + 1].get_ylim() == pytest.approx(y_limits(gain))  # shared by the edges
    # a short search barely moves: the axes zoom in instead of showing 0..1
    near = tidy.assign(prob=1.0 / tidy.groupby("edge")["op"].transform("nunique") + 1e-3 * (tidy["prob"] - 0.5))
    low, high = alphas_figure(near).axes[0].get_ylim()
    assert 0.3 < low < high < 0.34


# -- finished runs ----------------------------------------------------------------------------------
def test_load_runs_marks_unfinished_runs(tmp_path, caplog):
    done, _ = _search_run(tmp_path, "done", steps=2)
    (done.dir / "genotype.yaml").write_text("{}\n")
    going, _ = _search_run(tmp_path, "going", steps=2)
    trained = _train_run(tmp_path)
    (trained.dir / "model.pt").write_bytes(b"")  # never opened: only its presence counts
    training = _train_run(tmp_path)
    (training.dir / "genotype.yaml").write_text("{}\n")  # a training run writes it when it starts
    frame = load_runs(str(tmp_path / "*"))
    assert list(frame.columns[:2]) == ["run", "finished"] and frame["finished"].dtype == bool
    finished = frame.groupby("run")["finished"].agg(["min", "max"])
    assert (finished["min"] == finished["max"]).all()
    assert finished["min"].to_dict() == {done.dir.name: True, going.dir.name: False,
                                         trained.dir.name: True, training.dir.name: False}
    assert is_finished(done.dir) and not is_finished(training.dir)
    warned = [r.getMessage() for r in caplog.records if "not finished" in r.getMessage()]
    assert len(warned) == 2 and "no genotype.yaml" in warned[0] + warned[1] and "no model.pt" in warned[0] + warned[1]


# -- dtypes and float round trip --------------------------------------------------------------------
def test_text_columns_share_one_dtype(tmp_path):
    run, _ = _search_run(tmp_path)
    tidy = load_trajectory(run.dir)
    assert {str(tidy[c].dtype) for c in ("module", "phase", "edge", "op")} == {"string"}
    frame = load_runs(str(tmp_path / "*"))
    assert {str(frame[c].dtype) for c in ("run", "module", "phase", "edge", "op")} == {"string"}
    train = load_trajectory(_train_run(tmp_path).dir)
    assert str(train["module"].dtype) == str(train["phase"].dtype) == "string"


def test_repr_floats_read_back_exactly_as_the_docs_say(tmp_path):
    hard = [0.1, 1 / 3, 2 / 3, -15.361, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
            0.30000000000000004, 9007199254740993.0, 1.2345678901234567e-05, *np.random.default_rng(0).random(200)]
    with Run.create({}, "floats", root=tmp_path) as run:
        for step, value in enumerate(hard, start=1):
            run.trajectory_writer.append({"step": step, "val_loss": float(value)})
    path = run.dir / "trajectory.csv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the recommended call raises no deprecation warning
        assert pd.read_csv(path, **CSV_FLOATS)["val_loss"].tolist() == [float(v) for v in hard]
    assert pd.read_csv(path, engine="python")["val_loss"].tolist() == [float(v) for v in hard]
    assert load_trajectory_wide(run.dir)["val_loss"].tolist() == [float(v) for v in hard]
    if tuple(map(int, re.findall(r"\d+", pd.__version__)[:2])) >= (3, 1):
        assert CSV_FLOATS == {}  # docs/runs.md: plain pd.read_csv(path)


# -- compare labels ---------------------------------------------------------------------------------
def test_label_of_relative_paths(tmp_path, monkeypatch):
    (tmp_path / "mymodel" / "eval-mit5").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "mymodel")
    assert label_of(Path("eval-mit5/summary.json")) == "mymodel/eval-mit5"
    assert label_of(Path("summary.json")) == "mymodel"
    monkeypatch.chdir(tmp_path / "mymodel" / "eval-mit5")
    assert label_of(Path("summary.json")) == "mymodel/eval-mit5"
    assert label_of(Path("../eval-mit5/summary.json")) == "mymodel/eval-mit5"
    assert label_of(tmp_path / "runA" / "eval-lol" / "summary.json") == "runA/eval-lol"


# -- matplotlib stays quiet -------------------------------------------------------------------------
def test_first_plot_prints_nothing(tmp_path):
    """A fresh font cache is built silently (in the user's matplotlib folder, left as it is)."""
    run, _ = _search_run(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["MPLCONFIGDIR"] = str(tmp_path / "cache")
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            "from nas_llv.results import plot_alphas\n"
            f"plot_alphas({str(run.dir)!r}, {str(tmp_path / 'a.png')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == ""
    assert list((tmp_path / "cache").glob("fontlist-*.json"))
    assert (tmp_path / "a.png").is_file()
