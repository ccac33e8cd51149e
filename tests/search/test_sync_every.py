"""``speed.sync_every`` (issue 29, item 3): a search step reads nothing to the host; its trajectory rows
and finiteness checks stay on the device and are read in one transfer every ``sync_every`` steps. The
tests count the host reads nas_llv's own code makes (``float(t)``, ``t.item()``, ``bool(t)``, ...) step
by step, and check that rows, divergence reports and resumes are the same as when every step is read.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from conftest import RECIPES, count_host_reads, host_reads_per_call, stopped_and_resumed, tiny_searcher
from nas_llv import pipeline
from nas_llv.job import Diverged
from nas_llv.recipe import load_recipe, recipe_from_dict
from nas_llv.results import load_trajectory
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.rows import PendingRows, finite_flags
from test_cuda_graphs import TINY
from test_search import TINY as TINY_SEARCHER


def rows_of(run_dir) -> pd.DataFrame:
    """The trajectory file as written, one row per step, the time column aside."""
    return pd.read_csv(run_dir / "trajectory.csv").drop(columns="seconds")


def base(sync_every: int) -> dict:
    return {**TINY_SEARCHER, "speed": {"sync_every": sync_every}}


@pytest.mark.parametrize("sync_every, reads", [(4, [0, 1, 0, 1, 0]), (1, [2, 2, 2, 2, 2])])
def test_a_search_step_reads_the_host_only_when_its_rows_are_written(tmp_path, monkeypatch, sync_every, reads):
    """Finite differences, two levels an iteration: with ``sync_every: 4`` the iterations between
    writes read nothing, and a write is one ``tolist``; read every step, each level's row is one."""
    s = tiny_searcher(base(sync_every), tmp_path, steps_per_epoch=6, checkpoint_every=100)
    seen = host_reads_per_call(monkeypatch, lambda: s.advance(0.0), 5)
    assert [len(c) for c in seen] == reads, seen
    assert all(name == "tolist" and where == "rows.py" for c in seen for name, where, _ in c)
    s.flush_rows()
    assert list(rows_of(s.attached_run.dir)["step"]) == list(range(1, 11))


@pytest.mark.parametrize("recipe, overrides", [
    ("ruas_demo", [*TINY, "search.cost={target: 1.0}", "search.perturb={epsilon: 0.03}", "search.aux_skip={weight: 1.0}"]),
    ("ruas_demo", [*TINY, "search.relaxation=sigmoid", "search.zero_one=10"]),
    ("ruas_demo", [*TINY, "network.spaces.denoise=ruas_denoise_capacity", "search.presence={weights: present}",
                   "search.cost={target: 1.0}"]),
    ("llsr_demo", ["data.demo_count=6", "data.demo_size=48", "data.crop=16"]),  # loss hyper-variables ς
])
def test_the_extensions_and_hyper_variables_read_nothing_between_writes(tmp_path, monkeypatch, recipe, overrides):
    """The search extensions' columns and penalties (expected cost, SDARTS' noise, DARTS-' skip,
    FairDARTS' zero-one loss, presence gains) and TriCo's ς columns stay on the device too."""
    r = load_recipe(RECIPES / f"{recipe}.yaml", [*overrides, "speed.sync_every=100", "search.steps_per_epoch=50"])
    s = Searcher(r)
    s.attach(Run.create(r.to_dict(), r.name, tmp_path))
    calls = count_host_reads(monkeypatch)
    s.advance(0.0)
    s.advance(0.0)
    monkeypatch.undo()
    assert calls == [] and len(s.rows) == 2 * len(s.schedule(0))  # two iterations kept


def test_rows_read_every_few_steps_are_the_rows_read_every_step(tmp_path):
    """The demo search (8 steps, two epochs), rows read every 3 steps against every step: the same
    trajectory to the last digit (the time column aside)."""
    every = pipeline.search(RECIPES / "ruas_demo.yaml", TINY, output=tmp_path / "1")
    kept = pipeline.search(RECIPES / "ruas_demo.yaml", [*TINY, "speed.sync_every=3"], output=tmp_path / "3")
    a, b = (load_trajectory(r.dir).drop(columns="seconds") for r in (every, kept))
    assert a["step"].max() == 8 and a["prob"].notna().sum() > 50 and a.equals(b)


def _poison_after(s: Searcher, step: int) -> None:
    """The weights of the level updated at step ``step`` become NaN right after its update."""
    update = s._update

    def poisoned(level):
        out = update(level)
        if s.step + 1 == step:
            with torch.no_grad():
                next(iter(level.lower.values())).fill_(float("nan"))
        return out
    s._update = poisoned


def test_a_nan_between_writes_is_reported_at_its_step_with_the_rows_before_it(tmp_path):
    """A weight made NaN at step 3 of 4 kept on the device: the same error as when each step is read
    (the step, the level, the weight), and the rows of steps 1 and 2 written, none after."""
    errors, frames = [], []
    for every in (1, 4):
        s = tiny_searcher(base(every), tmp_path / str(every), steps_per_epoch=6, checkpoint_every=100)
        _poison_after(s, 3)
        with pytest.raises(Diverged) as err:
            s.run()
        errors.append(str(err.value))
        frames.append(rows_of(s.attached_run.dir))
    assert errors[0] == errors[1] and "diverged at step 3, module scene: weight" in errors[0], errors
    assert list(frames[1]["step"]) == [1, 2] and frames[0].equals(frames[1])


def test_a_run_stopped_between_writes_resumes_to_the_uninterrupted_trajectory(tmp_path):
    """Stopped after 3 steps with rows read every 5: the checkpoint (at step 4, the iteration's end)
    comes with its rows, since the resumed run writes only the steps after it, and the trajectory
    ends as a run never stopped."""
    whole = tiny_searcher(base(5), tmp_path / "whole", checkpoint_every=100)
    assert whole.run() is True
    resumed = stopped_and_resumed(tiny_searcher(base(5), tmp_path / "part", checkpoint_every=100), 3)
    pd.testing.assert_frame_equal(rows_of(whole.attached_run.dir), rows_of(resumed.attached_run.dir))


def test_pending_rows_are_read_in_one_transfer_with_each_value_as_it_was():
    """A parameter changed in place after its step is written with the value it had then; a scalar
    check shows its value; a larger one a phrase."""
    p = torch.nn.Parameter(torch.tensor(2.0))
    w = torch.nn.Parameter(torch.ones(3))
    rows, written = PendingRows(every=2), []
    rows.add(1, "m", {"a": p * 1, "b": "x", "c": 0.5, "p": p}, {"loss": {"total": p}, "weight": {"w": w}})
    assert not rows.due()
    with torch.no_grad():
        p.add_(1.0)
        w[1] = float("inf")
    rows.add(2, "m", {"p": p}, {"weight": {"w": w}})
    assert rows.due()

    def diverged(step, module, what, name, shown):
        return ValueError(f"{step} {module} {what} {name} {shown}")
    with pytest.raises(ValueError, match="^2 m weight w nan or inf$"):
        rows.flush(written.append, diverged)
    assert written == [{"a": 2.0, "b": "x", "c": 0.5, "p": 2.0}] and len(rows) == 0
    rows.add(3, "m", {}, {"loss": {"total": torch.tensor(float("nan"))}})
    with pytest.raises(ValueError, match="^3 m loss total nan$"):
        rows.flush(written.append, diverged)
    with pytest.raises(TypeError, match="trajectory column 'v': expected a scalar"):
        rows.add(4, "m", {"v": torch.ones(2)}, {})


def test_sync_every_below_one_is_refused():
    data = yaml.safe_load(yaml.safe_dump(base(0)))
    with pytest.raises(Exception, match="sync_every"):
        recipe_from_dict(data, "tiny.yaml")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_on_cuda_the_steps_between_writes_synchronise_less(tmp_path):
    """torch's own count of synchronising CUDA calls (``set_sync_debug_mode``) over four iterations:
    rows read every step against every 8 steps. Both runs copy the same batches to the device; the
    deferred run saves at least one synchronisation per row not read (6 of 8)."""
    import warnings

    counts = []
    for every in (1, 8):
        s = tiny_searcher({**base(every), "device": "cuda"}, tmp_path / str(every), steps_per_epoch=6,
                          checkpoint_every=100)
        s.advance(0.0)  # the first iteration's one-time work (cuDNN's choices) left out
        s.flush_rows()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                for _ in range(4):
                    s.advance(0.0)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchronizing" in str(w.message) for w in seen))
    assert counts[1] <= counts[0] - 6, counts


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_finite_flags_mark_each_tensor_with_a_non_finite_entry(bad):
    tensors = [torch.randn(3, 4), torch.randn(5), torch.randn(2, 2, 3), torch.randn(6)]
    tensors[1][2] = bad
    tensors[3][0] = bad
    assert finite_flags(tensors).tolist() == [True, False, True, False]
    # mixed dtypes: one check per tensor, the same answers
    mixed = [tensors[0].double(), *tensors[1:]]
    assert finite_flags(mixed).tolist() == [True, False, True, False]
