"""``logging.tensorboard: true`` (nas_llv/tensorboard.py): a tiny search, stopped and resumed,
writes its trajectory's numbers as TensorBoard scalars that read back equal to trajectory.csv's;
without the package the recipe is refused in one line before any folder is made."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas_llv import pipeline as p
from nas_llv.config import ConfigError
from nas_llv.recipe import load_recipe
from nas_llv.results import load_trajectory_wide

ROOT = Path(__file__).resolve().parents[1]
TINY = ["search.epochs=2", "data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1",
        "device=cpu", "logging.tensorboard=true"]


def test_a_resumed_search_s_scalars_equal_its_trajectory(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stopped = p.search(ROOT / "recipes/ruas_demo.yaml", TINY, output=tmp_path, stop_after=2)
    run = p.resume(stopped)
    events = EventAccumulator(str(run.dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    wide = load_trajectory_wide(run.dir)
    numeric = [c for c in wide.columns if c != "step" and wide[c].dtype.kind in "fi"]
    assert "val_loss" in numeric and any(c.startswith("prob/") for c in numeric)
    assert set(events.Tags()["scalars"]) == set(numeric)
    for column in ("val_loss", "prob/scene.c1_d/skip", "epoch"):
        logged = events.Scalars(column)
        rows = wide[["step", column]].dropna()
        assert [e.step for e in logged] == rows["step"].tolist()  # each step once, across the resume
        np.testing.assert_allclose([e.value for e in logged], rows[column], rtol=1e-6)  # float32 in the file


def test_without_tensorboard_the_recipe_is_refused_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr("nas_llv.tensorboard.installed", lambda: False)
    with pytest.raises(ConfigError, match=r"logging.* tensorboard: true needs the tensorboard package; "
                                          r"pip install -e '\.\[tensorboard\]'"):
        load_recipe(ROOT / "recipes/ruas_demo.yaml", ["logging.tensorboard=true"])
    assert load_recipe(ROOT / "recipes/ruas_demo.yaml").logging.tensorboard is False  # off by default
