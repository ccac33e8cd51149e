"""RobustDARTS: the Hessian's dominant eigenvalue by power iteration, DARTS-ES, and both in a search."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml

from conftest import RECIPES, stopped_and_resumed, tiny_searcher
from nas_llv.cli import main
from nas_llv.search.extensions import hessian
from nas_llv.search.extensions.hessian import (
    COLUMN, EarlyStopConfig, HessianConfig, HessianTracker, arch_snapshot, dominant_eigenvalue, rise_ratio, should_stop,
)
from nas_llv.space import nni_bridge
from nas_llv.space.genotype import Genotype
from nas_llv.space.supernet import ArchParams, arch_modules
from test_search import TINY, _trajectory


def _quadratic(eigenvalues: list[float]):
    """0.5 αᵀAα + bᵀα over α = (a, b) of sizes 2 and 3, A = Q diag(eigenvalues) Qᵀ."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    a = q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T
    b = torch.randn(5, generator=g, dtype=torch.float64)

    def loss(ov):
        alpha = torch.cat([ov["a"], ov["b"]])
        return 0.5 * alpha @ a @ alpha + b @ alpha

    at = {"a": torch.randn(2, generator=g, dtype=torch.float64), "b": torch.randn(3, generator=g, dtype=torch.float64)}
    return loss, at


@pytest.mark.parametrize("eigenvalues, dominant", [([4.0, 1.5, -0.7, 0.3, 2.0], 4.0), ([-5.0, 2.0, 1.0, 0.1, 3.0], -5.0)])
def test_power_iteration_finds_the_dominant_eigenvalue_of_a_quadratic(eigenvalues, dominant):
    loss, at = _quadratic(eigenvalues)
    got = dominant_eigenvalue(loss, at, iters=200, tol=1e-13, generator=torch.Generator().manual_seed(3))
    assert got == pytest.approx(dominant, rel=1e-8)


def test_power_iteration_stops_at_its_tolerance_or_iteration_count():
    loss, at = _quadratic([4.0, 3.9, 1.0, 0.5, 0.1])  # slow: the ratio of the top two is 0.975
    few = dominant_eigenvalue(loss, at, iters=3, tol=0.0, generator=torch.Generator().manual_seed(3))
    many = dominant_eigenvalue(loss, at, iters=2000, tol=1e-14, generator=torch.Generator().manual_seed(3))
    assert many == pytest.approx(4.0, rel=1e-8) and few != pytest.approx(4.0, rel=1e-8)
    assert dominant_eigenvalue(lambda ov: ov["a"].sum(), {"a": torch.ones(3)}, 5, 0.0, torch.Generator()) == 0.0


def test_darts_es_rule_on_a_hand_made_series():
    flat, rising = [1.0] * 10, [1.0] * 5 + [1.5] * 5  # 1 / 1.5 = 0.667 < 0.75
    cfg = EarlyStopConfig(window=5, ratio=0.75)
    assert rise_ratio(rising, 5) == pytest.approx(2 / 3)
    assert should_stop(rising, cfg) and not should_stop(flat, cfg)
    assert not should_stop([1.0] * 5 + [1.2] * 5, cfg)  # 0.833: a rise, not enough of one
    assert not should_stop(rising[1:], cfg)  # fewer than 2k epochs
    assert rise_ratio([1.0, -1.0], 1) is None  # no positive later mean to compare with
    assert should_stop([1.0, 1.0, 2.0, 2.0], EarlyStopConfig(window=2, ratio=0.75))


def test_tracker_stops_on_the_rise_and_returns_the_alpha_of_window_epochs_earlier():
    """Epoch means 1, 1, 1, 2 with window 2: after epoch 4, mean(epochs 1-2) / mean(epochs 3-4) =
    1 / 1.5 < 0.75, so the search stops there and keeps the α of epoch 2 (argmax: op 1)."""
    arch = nni_bridge.plain(ArchParams)
    arch.add("e", ("conv_1x1", "conv_3x3", "skip"))
    tracker = HessianTracker(HessianConfig(early_stop=EarlyStopConfig(window=2, ratio=0.75)), seed=0)
    for epoch, value in enumerate([1.0, 1.0, 1.0, 2.0]):
        with torch.no_grad():
            arch["e"].copy_(torch.nn.functional.one_hot(torch.tensor(epoch % 3), 3).double())
        assert tracker.stopped is None
        tracker.running = {"scene": [value, value]}
        tracker.end_epoch(epoch, arch)
    assert tracker.stopped["epoch"] == 4 and tracker.stopped["architecture_epoch"] == 2
    assert torch.equal(tracker.snapshots[0]["e"], torch.tensor([0.0, 1.0, 0.0]))  # epoch 2 (0-based 1)
    genotype = tracker.final(Genotype({}, {}, {"e": "conv_1x1"}, {"val_loss": 0.1, "step": 8}), arch)
    assert genotype.choices == {"e": "conv_3x3"}
    assert genotype.meta["step"] == 8 and "val_loss" not in genotype.meta
    assert "DARTS-ES" in genotype.meta["early_stopped"]["reason"]


def _searcher(tmp_path, **search):
    return tiny_searcher(TINY, tmp_path, **search)


REMEDIES = {"hessian": {"every": 2, "iters": 4}, "perturb": {"epsilon": 0.03}, "aux_skip": {"weight": 1.0}}


def test_a_search_with_the_remedies_writes_the_column_and_resumes_exactly(tmp_path):
    full = _searcher(tmp_path / "a", **REMEDIES)
    assert full.run() is True
    frame = _trajectory(full.attached_run.dir)
    every_second = frame.groupby("module").cumcount() % 2 == 1  # each level's 2nd, 4th, ... arch step
    assert frame[COLUMN][every_second].notna().all() and frame[COLUMN][~every_second].isna().all()
    assert (frame[COLUMN][every_second] != 0).all()
    resumed = stopped_and_resumed(_searcher(tmp_path / "b", **REMEDIES), stop_after=2)
    pd.testing.assert_frame_equal(frame, _trajectory(resumed.attached_run.dir))
    assert (full.attached_run.dir / "genotype.yaml").read_text().split("meta:")[0] == \
        (resumed.attached_run.dir / "genotype.yaml").read_text().split("meta:")[0]


def _rising(level, batch, cfg, generator):
    """λ = the level's arch step count (the tracker seeds the generator with it): a steady rise."""
    return float(generator.initial_seed() % 1_000_003)


def test_early_stop_ends_the_search_and_writes_the_earlier_genotype(tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO", logger="nas_llv.search.extensions.hessian")
    monkeypatch.setattr(hessian, "level_eigenvalue", _rising)
    cfg = {"hessian": {"every": 1, "early_stop": {"window": 1, "ratio": 0.75}}, "epochs": 4}
    s = _searcher(tmp_path / "a", **cfg)
    seen = []
    end_epoch = s.extension("hessian").tracker.end_epoch
    s.extension("hessian").tracker.end_epoch = lambda epoch, net: (seen.append(arch_snapshot(net)), end_epoch(epoch, net))
    assert s.run() is True
    # epoch means 1.5, 3.5 per level: 1.5 / 3.5 < 0.75 after epoch 2, which returns to epoch 1's α
    assert s.epoch == 2 and s.extension("hessian").tracker.stopped["architecture_epoch"] == 1
    assert all(torch.equal(s.extension("hessian").tracker.snapshots[0][k], v) for k, v in seen[0].items())
    assert any(not torch.equal(s.extension("hessian").tracker.snapshots[0][k], v) for k, v in seen[1].items())
    written = yaml.safe_load((s.attached_run.dir / "genotype.yaml").read_text())
    assert written["meta"]["early_stopped"]["epoch"] == 2
    assert [r.getMessage() for r in caplog.records if "early stop" in r.getMessage()] == [
        "early stop after epoch 2, level scene: DARTS-ES: mean Hessian eigenvalue of the 1 epochs before the last 1 "
        "/ of the last 1 = 0.4286 < 0.75; genotype.yaml takes the architecture of epoch 1"]
    assert written["genotype"] == hessian.genotype_of(s.net, seen[0])
    again = stopped_and_resumed(_searcher(tmp_path / "b", **cfg), stop_after=6)  # inside epoch 2
    assert yaml.safe_load((again.attached_run.dir / "genotype.yaml").read_text())["genotype"] == written["genotype"]
    assert again.epoch == 2


def test_an_early_stopped_genotype_keeps_the_skip_cap(tmp_path, monkeypatch):
    """DARTS-ES's earlier architecture is capped as the latest one would be (search.max_skip)."""
    from nas_llv.space.ops import SKIP_OPS

    monkeypatch.setattr(hessian, "level_eigenvalue", _rising)
    cfg = {"hessian": {"every": 1, "early_stop": {"window": 1, "ratio": 0.75}}, "epochs": 4, "max_skip": 0}
    s = _searcher(tmp_path, **cfg)
    seen = []
    end_epoch = s.extension("hessian").tracker.end_epoch
    s.extension("hessian").tracker.end_epoch = lambda epoch, net: (seen.append(arch_snapshot(net)), end_epoch(epoch, net))
    with torch.no_grad():  # every edge prefers skip from the start, so the cap has work to do
        for arch in arch_modules(s.net):
            for label, a in arch.items():
                a[list(arch.candidates[label]).index("skip")] += 5.0
    assert s.run() is True and s.extension("hessian").tracker.stopped is not None
    written = yaml.safe_load((s.attached_run.dir / "genotype.yaml").read_text())
    uncapped = hessian.genotype_of(s.net, seen[0])
    assert sum(op in SKIP_OPS for op in uncapped.values()) > 0
    assert not any(op in SKIP_OPS for op in written["genotype"].values())
    changed = written["meta"]["max_skip"]["changed"]
    assert changed and all(uncapped[label] == c["from"] for label, c in changed.items())


def test_the_demo_recipe_searches_with_the_remedies_from_the_command_line(tmp_path):
    """``recipes/ruas_demo.yaml`` made small by overrides, the remedies switched on by overrides too."""
    argv = ["search", str(RECIPES / "ruas_demo.yaml"), "--output", str(tmp_path), "search.epochs=2",
            "search.steps_per_epoch=2", "data.crop=16", "data.demo_size=32", "data.demo_count=4",
            "search.hessian={every: 1, iters: 3, early_stop: {window: 5}}", "search.perturb={epsilon: 0.03}",
            "search.aux_skip={weight: 1.0}"]
    assert main(argv) == 0
    (run,) = tmp_path.iterdir()
    frame = _trajectory(run)
    assert len(frame) == 8 and frame[COLUMN].notna().all()  # every arch step of both levels
    config = yaml.safe_load((run / "config.yaml").read_text())["search"]
    assert config["hessian"] == {"every": 1, "iters": 3, "tol": 1e-3, "early_stop": {"window": 5, "ratio": 0.75}}
    assert config["perturb"] == {"epsilon": 0.03} and config["aux_skip"] == {"weight": 1.0}
    assert "early_stopped" not in yaml.safe_load((run / "genotype.yaml").read_text())["meta"]  # 2 epochs < 2k
