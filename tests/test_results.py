from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nas_llv.config import ConfigError
from nas_llv.results import (final_probs, load_runs, load_trajectory, load_trajectory_wide, plot_alphas,
                             plot_hyper)
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
            run.trajectory.append(row)
            rows.append(row)
    return run, rows


def _train_run(root) -> Run:
    with Run.create({"name": "t"}, "train", root=root) as run:
        for step in range(1, 4):
            run.trajectory.append({"step": step, "epoch": 0, "module": "weights", "phase": "train",
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
