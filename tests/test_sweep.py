"""nas-llv sweep: seeds and grids planned, trials run as Ray tasks on a local Ray started once for
this module, one run folder per trial, the summary, and --resume rerunning only an unfinished trial."""
from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.sweep import genotype_hash, parse_grid, parse_seeds, plan_trials, split_values

SEARCH = str(RECIPES / "ruas_demo.yaml")
TRAIN = str(RECIPES / "ruas_demo_train.yaml")
TINY = ["search.epochs=2", "search.steps_per_epoch=2", "search.val_batches=1", "data.demo_count=4",
        "data.demo_size=32", "data.crop=16", "data.batch_size=1", "train.steps=2", "train.val_every=1",
        "train.val_batches=1", "train.checkpoint_every=1"]


# -- planning --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seeds"), [("0-3", [0, 1, 2, 3]), ("0,2,5", [0, 2, 5]), ("0-1,7", [0, 1, 7]),
                                             ("4", [4])])
def test_seeds_take_ranges_and_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["3-1", "a", "1,1", "", "-2", "0-"])
def test_bad_seeds_are_one_error(text):
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds(text)


def test_grid_values_are_yaml_and_commas_inside_brackets_stay():
    assert split_values("0.5,[1, 2],'a,b'") == ["0.5", "[1, 2]", "'a,b'"]
    grid = parse_grid(["search.beta=0.5,1,2", "search.arch.betas=[0.5, 0.999],[0.9, 0.999]"])
    assert [k for k, _ in grid] == ["search.beta", "search.arch.betas"]
    assert [v for _, v in grid[0][1]] == [0.5, 1, 2]
    assert [v for _, v in grid[1][1]] == [[0.5, 0.999], [0.9, 0.999]]


def test_trials_are_the_product_of_grid_and_seeds():
    trials = plan_trials([0, 1], parse_grid(["search.beta=0.5,2", "data.crop=16,32,48"]))
    assert len(trials) == 2 * 2 * 3
    assert [t.index for t in trials] == list(range(12))
    assert {(t.seed, t.grid["search.beta"], t.grid["data.crop"]) for t in trials} == {
        (s, b, c) for s in (0, 1) for b in (0.5, 2) for c in (16, 32, 48)}
    assert trials[0].seed == 0 and trials[1].seed == 1 and trials[1].grid == trials[0].grid  # seed fastest
    assert trials[3].overrides() == ["seed=1", "search.beta=0.5", "data.crop=32"]
    assert trials[3].name("ruas_demo") == "ruas_demo-t03-seed1"


@pytest.mark.parametrize(("item", "expect"), [
    ("search.beta", "expected KEY=V1,V2"), ("search.beta=", "expected KEY=V1,V2"), ("search.beta=1,,2", "KEY=V1,V2"),
    ("seed=1,2", "use --seeds"), ("search.beta=!!python/object:os.system x", "YAML tags")])
def test_bad_grid_is_one_error(item, expect):
    with pytest.raises(ConfigError, match=expect.replace("(", r"\(").replace(")", r"\)")):
        parse_grid([item])


def test_a_key_twice_in_the_grid_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["search.beta=1,2", "search.beta=3"])


def test_genotype_hash_depends_on_the_choices_only():
    a = {"scene.c1": "conv_3x3", "scene.c2": "skip"}
    assert genotype_hash(a) == genotype_hash(dict(reversed(list(a.items()))))
    assert genotype_hash(a) != genotype_hash({**a, "scene.c2": "conv_3x3"})
    assert len(genotype_hash(a)) == 12


def test_without_ray_the_command_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["sweep", SEARCH, "--seeds", "0-1"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "pip install -e '.[ray]'" in err[0] and err[0].startswith("nas-llv sweep: error:")
    assert not list(tmp_path.iterdir())


def test_an_address_where_nothing_listens_fails_in_one_line_not_minutes():
    import socket

    from nas_llv.pipeline.trials import _check_reachable

    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match=f"--address 127.0.0.1:{port}: nothing answers there"):
        _check_reachable(f"127.0.0.1:{port}")


# -- on Ray ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    """One embedded Ray for the module: the sweeps below join it rather than start their own."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 * 2**20,
             logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def _pairs(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        high = rng.integers(40, 255, (24, 24, 3), dtype=np.uint8)
        for sub, img in (("high", high), ("low", (high // 4).astype(np.uint8))):
            (root / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / sub / name)
    return root


def _summary(sweep: Path) -> list[dict[str, str]]:
    with (sweep / "summary.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def sweep(local_ray, tmp_path_factory):
    """A finished sweep of 2 tiny trials (seeds 0 and 1), each searched, retrained (by ruas_demo_train.yaml,
    beside the recipe) and evaluated."""
    root = tmp_path_factory.mktemp("sweep")
    pairs = _pairs(root / "pairs")
    out = root / "results"
    assert main(["sweep", SEARCH, "--seeds", "0-1", "--eval", str(pairs), "--output", str(out), *TINY]) == 0
    (folder,) = out.iterdir()
    return folder


def test_a_sweep_makes_one_finished_run_folder_per_trial(sweep):
    plan = yaml.safe_load((sweep / "sweep.yaml").read_text())
    assert [t["seed"] for t in plan["trials"]] == [0, 1] and plan["train_recipe"] == TRAIN
    assert [t["train"]["train"]["steps"] for t in plan["trials"]] == [2, 2]  # the overrides reach the retraining
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name != "retrain")
    assert [p.name.rsplit("-", 2)[0] for p in runs] == ["ruas_demo-t00-seed0", "ruas_demo-t01-seed1"]
    for run in runs:
        assert (run / "genotype.yaml").is_file() and (run / "trajectory.csv").is_file()
        assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == int(run.name.split("seed")[1][0])
    trained = sorted((sweep / "retrain").iterdir())
    assert len(trained) == 2 and all((t / "model.pt").is_file() for t in trained)
    assert all((t / "eval-pairs" / "summary.json").is_file() for t in trained)


def test_the_summary_has_one_measured_row_per_trial(sweep):
    from nas_llv.space.genotype import load_genotype

    rows = _summary(sweep)
    assert [(r["trial"], r["seed"], r["status"]) for r in rows] == [("0", "0", "finished"), ("1", "1", "finished")]
    for row in rows:
        geno = load_genotype(sweep / row["run"] / "genotype.yaml")
        assert row["genotype_hash"] == genotype_hash(geno.choices)
        assert int(row["params"]) == sum(p.numel() for p in geno.build().parameters())
        assert float(row["flops"]) > 0 and float(row["val_loss"]) > 0
        assert 0 < float(row["psnr"]) < 100 and 0 < float(row["ssim"]) <= 1
    table = (sweep / "summary.md").read_text()
    assert table.count("| finished |") == 2 and "| genotype_hash |" in table


def test_load_runs_reads_a_sweep_folder(sweep):
    from nas_llv.results import load_runs

    frame = load_runs(str(sweep))
    assert sorted(frame["run"].unique()) == sorted(r["run"] for r in _summary(sweep))
    assert list(frame.columns[:4]) == ["run", "finished", "trial", "seed"]
    assert frame.groupby("run")["seed"].first().sort_values().tolist() == [0, 1]
    assert frame["finished"].all()


def test_resume_reruns_only_the_unfinished_trial(sweep, tmp_path, monkeypatch):
    """Trial 1 is replaced by a search stopped after 2 steps (no retraining yet): --resume continues
    that search from its checkpoint, retrains and evaluates it, and leaves trial 0 alone."""
    import shutil

    copy = tmp_path / sweep.name
    shutil.copytree(sweep, copy)
    before = {r["trial"]: r for r in _summary(copy)}
    first = copy / before["0"]["run"]
    stamp = (first / "trajectory.csv").stat().st_mtime_ns
    second = copy / before["1"]["run"]
    config = tmp_path / "t01.yaml"
    shutil.copy(second / "config.yaml", config)
    shutil.rmtree(second)
    for trained in (copy / "retrain").glob("ruas_demo_train-t01-*"):
        shutil.rmtree(trained)
    assert main(["search", str(config), "--output", str(copy), "--stop-after", "2"]) == 0
    (stopped,) = copy.glob("ruas_demo-t01-seed1-*")
    assert not (stopped / "genotype.yaml").exists()

    assert main(["sweep", "--resume", str(copy)]) == 0
    assert sorted(p.name for p in copy.glob("ruas_demo-t01-seed1-*")) == [stopped.name]  # resumed in place
    assert "resuming run" in (stopped / "log.txt").read_text()
    assert (first / "trajectory.csv").stat().st_mtime_ns == stamp
    assert len(list((copy / "retrain").iterdir())) == 2
    after = {r["trial"]: r for r in _summary(copy)}
    assert after["0"] == before["0"]
    assert after["1"]["status"] == "finished" and after["1"]["run"] == stopped.name
    # a resumed search continues exactly: the same genotype and validation loss as uninterrupted
    assert after["1"]["genotype_hash"] == before["1"]["genotype_hash"]
    assert float(after["1"]["val_loss"]) == pytest.approx(float(before["1"]["val_loss"]), abs=1e-5)


def test_a_finished_sweep_resumes_to_nothing(sweep, capsys):
    stamp = (sweep / "summary.csv").read_text()
    assert main(["sweep", "--resume", str(sweep)]) == 0
    assert (sweep / "summary.csv").read_text() == stamp
    assert capsys.readouterr().out.strip() == str(sweep)


def test_more_cpus_per_trial_than_the_cluster_has_is_one_error(local_ray, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", SEARCH, "--cpus-per-trial", "64", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--cpus-per-trial 64: the Ray cluster has 2 CPUs in all" in err[-1]
    assert not (tmp_path / "results").exists()


def test_a_failing_trial_is_marked_failed_and_the_others_finish(local_ray, tmp_path, caplog):
    """data.crop=64 passes the recipe check but not the 32-pixel demo images: only trial 1 fails,
    in its Ray task, leaving no run folder; the command exits 1 after trial 0 finished."""
    tiny = [*TINY[:3], "search.epochs=1", "data.demo_count=4", "data.demo_size=32", "data.batch_size=1"]
    assert main(["sweep", SEARCH, "--grid", "data.crop=16,64", "--output", str(tmp_path), *tiny]) == 1
    (folder,) = tmp_path.iterdir()
    rows = _summary(folder)
    assert [(r["data.crop"], r["status"]) for r in rows] == [("16", "finished"), ("64", "failed")]
    assert rows[1]["run"] == "" and not list(folder.glob("ruas_demo-t01-*"))
    assert "trial 1 (ruas_demo-t01-seed0) failed: ConfigError: " in caplog.text


def test_max_gflops_keeps_a_dear_trial_from_retraining_and_resume_leaves_it(local_ray, tmp_path):
    """Every RUAS genotype costs more than 0.01 GFLOPs at 600x400 (the fixed part alone is ~0.4): the
    trial is searched, not retrained or evaluated, and counts as done for --resume."""
    tiny = [*TINY[:3], "search.epochs=1", *TINY[3:]]
    assert main(["sweep", SEARCH, "--eval", str(_pairs(tmp_path / "pairs")), "--max-gflops", "0.01",
                 "--output", str(tmp_path / "out"), *tiny]) == 0
    (folder,) = (tmp_path / "out").iterdir()
    (row,) = _summary(folder)
    assert row["status"] == "over cost limit" and float(row["flops"]) > 0.01e9
    assert row["train_run"] == "" and row["psnr"] == "" and not (folder / "retrain").exists()
    assert yaml.safe_load((folder / "sweep.yaml").read_text())["max_gflops"] == 0.01
    assert "--max-gflops 0.01: a trial whose genotype has more FLOPs at 600x400 is 'over cost limit'" in \
        (folder / "summary.md").read_text()
    stamp = (folder / "summary.csv").read_text()
    assert main(["sweep", "--resume", str(folder)]) == 0
    assert (folder / "summary.csv").read_text() == stamp and not (folder / "retrain").exists()


def test_a_finished_trial_is_over_the_limit_only_above_its_flops(sweep):
    """At its own FLOPs a trial keeps its scores; half a FLOP under them it is over the limit."""
    from nas_llv.pipeline.trials import collect_row

    plan = yaml.safe_load((sweep / "sweep.yaml").read_text())
    entry = plan["trials"][0]
    row = collect_row(sweep, entry, plan["eval"])
    at = collect_row(sweep, entry, plan["eval"], (row["flops"] + 0.5) / 1e9)
    under = collect_row(sweep, entry, plan["eval"], (row["flops"] - 0.5) / 1e9)
    assert row["status"] == at["status"] == "finished" and at == row
    searched = {k: v for k, v in row.items() if k not in ("train_run", "psnr", "ssim", "lpips")}
    assert under == {**searched, "status": "over cost limit"}  # the search's measures, no retraining's
