"""Strategy random: seeded uniform sampling, the best candidate on validation, resume, and a run
folder that derive and train take like any search's."""
from __future__ import annotations

import collections

import pandas as pd
import pytest
import torch
import yaml

from conftest import TINY_RUAS, RECIPES, tiny_searcher
from nas_llv.cli import main
from nas_llv.recipe import recipe_from_dict
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.space.genotype import random_choices
from nas_llv.space.supernet import probs_of

TINY = {
    **TINY_RUAS,
    "search": {"strategy": "random", "epochs": 3, "steps_per_epoch": 2, "val_batches": 2, "checkpoint_every": 1,
               "weights": {"lr": 0.01, "schedule": "cosine"}},
}
TINY_TRAIN = ["train.steps=2", "train.val_every=1", "train.val_batches=1", "data.demo_count=4",
              "data.demo_size=32", "data.crop=16", "data.batch_size=1"]


def _searcher(root, seed=0, **search):
    return tiny_searcher(TINY, root, seed, **search)


def test_random_choices_are_uniform_and_repeatable():
    labels = {"a": ("x", "y", "z"), "b": tuple("pqrstuv")}
    draws = [random_choices(labels, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert draws[0] == draws[1]
    g = torch.Generator().manual_seed(1)
    many = [random_choices(labels, g) for _ in range(2100)]
    for label, cands in labels.items():
        counts = collections.Counter(d[label] for d in many)
        expected = 2100 / len(cands)
        assert set(counts) == set(cands)
        # each count is binomial; 4.5 standard deviations from the mean fails about 1 in 10^5 runs
        sd = (2100 * (1 / len(cands)) * (1 - 1 / len(cands))) ** 0.5
        assert all(abs(c - expected) < 4.5 * sd for c in counts.values()), counts
    # the labels are drawn independently: 'a' tells nothing about 'b'
    joint = collections.Counter((d["a"], d["b"]) for d in many)
    assert len(joint) == 21


def test_candidates_follow_the_recipe_seed(tmp_path):
    a, b, c = (_searcher(tmp_path / n, seed=s) for n, s in (("a", 0), ("b", 0), ("c", 1)))
    try:
        assert a.strategy.samples == b.strategy.samples
        assert a.strategy.samples != c.strategy.samples
        assert len(a.strategy.samples) == 3 and len(a.strategy.samples[0]) == 14
    finally:
        for s in (a, b, c):
            s.close()


def test_each_candidate_starts_fresh_and_the_best_is_kept(tmp_path):
    s = _searcher(tmp_path)
    fresh = {k: v.clone() for k, v in s.net.state_dict().items() if ".alphas." not in k}
    assert s.run() is True
    run = s.attached_run.dir
    table = pd.read_csv(run / "candidates.csv")
    assert list(table["candidate"]) == [1, 2, 3]
    best = table.loc[table["val_loss"].idxmin()]
    geno = yaml.safe_load((run / "genotype.yaml").read_text())
    assert geno["genotype"] == {k: best[k] for k in geno["genotype"]}
    assert geno["meta"]["candidate"] == best["candidate"]
    assert yaml.safe_load((run / "genotype_best.yaml").read_text())["genotype"] == geno["genotype"]
    # the scores are the loop's end-of-epoch validation losses (as the log reports them)
    assert s.best["val_loss"] == pytest.approx(best["val_loss"], rel=1e-12)
    # every candidate is scored on the first candidate's validation batches
    assert len(s.strategy.val_batches) == 2
    # rows: one per level update and training step, the epoch numbering the candidate
    traj = pd.read_csv(run / "trajectory.csv")
    assert list(traj.groupby("epoch")["module"].apply(list)) == [["scene", "task"] * 2] * 3
    # within a candidate α is one-hot on its choices; each candidate starts from the initial
    # weights with a fresh optimizer at the base lr (the cosine schedule does not decay across them)
    s.strategy.start_epoch(1)
    picked = {lab: max(p, key=p.get) for lab, p in probs_of(s.net).items()}
    assert picked == s.strategy.samples[1]
    assert all(max(p.values()) == 1.0 for p in probs_of(s.net).values())
    now = s.net.state_dict()
    assert all(torch.equal(now[k], v) for k, v in fresh.items())
    assert all(not lv.weight_opt.state and lv.lr == 0.01 for lv in s.levels.values())
    assert set(traj["lr"]) == {0.01}


def test_resume_equals_uninterrupted(tmp_path):
    a = _searcher(tmp_path / "a")
    assert a.run() is True
    b = _searcher(tmp_path / "b")
    assert b.run(stop_after=6) is False  # inside the second candidate, its validation batches reused later
    b.attached_run.close()
    b.close()
    run = Run.open(b.attached_run.dir)
    c = Searcher(recipe_from_dict(run.config(), "config.yaml"))
    c.attach(run)
    c.load_state_dict(run.load_checkpoint())
    assert c.run() is True
    assert (a.attached_run.dir / "candidates.csv").read_text() == (run.dir / "candidates.csv").read_text()
    ours, theirs = (yaml.safe_load((d / "genotype.yaml").read_text())["genotype"] for d in (a.attached_run.dir, run.dir))
    assert ours == theirs


def test_random_run_folder_derives_and_trains(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(recipe), "--output", str(tmp_path / "s"), "search.epochs=2",
                 "search.steps_per_epoch=1", "search.levels_of=global"]) == 0
    (run,) = (tmp_path / "s").iterdir()
    assert set(pd.read_csv(run / "trajectory.csv")["module"]) == {"all"}
    capsys.readouterr()
    assert main(["derive", str(run), "--no-flops", "--draw"]) == 0
    out = capsys.readouterr().out
    best = pd.read_csv(run / "candidates.csv").sort_values("val_loss").iloc[0]
    # derive names the best candidates instead of margins (a random search's α is one-hot)
    assert "random search: 2 candidates" in out and f"candidate {best['candidate']:3d}" in out
    assert "margin" not in out and not (run / "entropy.png").exists()
    assert main(["train", str(run), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), *TINY_TRAIN,
                 "--output", str(tmp_path / "t")]) == 0
    assert (next((tmp_path / "t").iterdir()) / "model.pt").is_file()


def test_levels_of_must_name_another_strategy(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(TINY))
    assert main(["search", str(recipe), "--output", str(tmp_path / "s"), "search.levels_of=random"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "levels_of" in err[0] and "cooperative" in err[0]
    assert not (tmp_path / "s").exists()
