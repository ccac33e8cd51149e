"""``nas-llv runs``: real tiny runs made by the pipeline (a stopped search, a finished one, its
retraining, an evaluation folder), a sweep folder in the sweep's own format, and foreign and torn
folders; each one line, never a traceback, and no torch imported to list them."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch.nn.functional as F
import yaml

from conftest import RECIPES
from nas_llv import pipeline as p
from nas_llv.cli import main
from nas_llv.data import write_image
from nas_llv.data.demo import darken, source_image
from nas_llv.runlist import list_runs, table_lines
from nas_llv.sweep import genotype_hash, plan_trials, trial_dict, write_plan, write_summary

TINY_DATA = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "device=cpu"]
TINY_SEARCH = ["search.epochs=2", "search.steps_per_epoch=1", "search.val_batches=1", *TINY_DATA]
TINY_TRAIN = ["train.steps=2", "train.val_every=1", "train.val_batches=1", *TINY_DATA]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder as a session leaves it, plus a sweep, a foreign folder and torn ones."""
    out = tmp_path_factory.mktemp("results")
    stopped = p.search(RECIPES / "ruas_demo.yaml", TINY_SEARCH, output=out, stop_after=1)
    searched = p.search(RECIPES / "ruas_demo.yaml", TINY_SEARCH, output=out)
    trained = p.train(searched, RECIPES / "ruas_demo_train.yaml", TINY_TRAIN, output=out)
    pairs = out.parent / f"{out.name}-pairs"
    for sub in ("low", "high"):
        (pairs / sub).mkdir(parents=True)
    high = F.interpolate(source_image("astronaut")[None].float() / 255, size=(40, 48), mode="area")[0]
    write_image(pairs / "low" / "0.png", darken(high, 0.2))
    write_image(pairs / "high" / "0.png", high)
    p.evaluate(trained, pairs, out_dir=out / "eval_onnx", lpips_net="none", repeats=1, warmup=0, progress=False)
    sweep = out / "ruas_demo-sweep-20000101-000000"  # the oldest: its name's time comes first
    sweep.mkdir()
    write_plan(sweep, {"trials": [trial_dict(t, "ruas_demo") for t in plan_trials([0, 1, 2], [])]})
    write_summary(sweep, [], [{"trial": 0, "status": "finished", "psnr": 17.5, "genotype_hash": "aaaaaaaaaaaa"},
                              {"trial": 1, "status": "finished", "psnr": 18.25, "genotype_hash": "bbbbbbbbbbbb"},
                              {"trial": 2, "status": "failed"}])
    (out / "photos").mkdir()  # foreign: no run's files
    (out / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    (out / "torn").mkdir()  # a config cut short
    (out / "torn" / "config.yaml").write_text("name: [ruas")
    (out / "garbled").mkdir()  # a trajectory that is not one
    (out / "garbled" / "config.yaml").write_text("name: x\n")
    (out / "garbled" / "trajectory.csv").write_bytes(b"\x00\x01binary\n")
    (out / ".hidden").mkdir()
    (out / "README.md").write_text("not a folder\n")
    return {"out": out, "stopped": stopped, "searched": searched, "trained": trained}


def _rows(results):
    return {r.name: r for r in list_runs(results["out"])}


def test_each_kind_is_one_row_with_its_facts(results):
    rows = _rows(results)
    assert set(rows) == {results[k].dir.name for k in ("stopped", "searched", "trained")} | {
        "eval_onnx", "ruas_demo-sweep-20000101-000000", "photos", "torn", "garbled"}
    stopped, searched, trained = (rows[results[k].dir.name] for k in ("stopped", "searched", "trained"))
    assert (stopped.kind, stopped.status, stopped.steps, stopped.genotype) == ("search", "stopped at step 2", 2, None)
    meta = yaml.safe_load((results["searched"].dir / "genotype.yaml").read_text())
    assert (searched.kind, searched.status, searched.steps) == ("search", "finished", 4)
    assert searched.metric == f"val loss {meta['meta']['val_loss']:.5g}"
    assert searched.genotype == genotype_hash(meta["genotype"]) == trained.genotype  # trained: the same network
    wide = results["trained"].trajectory_frame(wide=True)
    psnr = wide["metric/psnr"].dropna()
    assert (trained.kind, trained.status, trained.steps) == ("train", "finished", 2)
    # step 0 is the untrained network: never "best" once a trained step was validated (as model_best.pt)
    best = wide.loc[wide["step"] > 0, "metric/psnr"].dropna().max()
    assert trained.metric.startswith(f"PSNR {psnr.iloc[-1]:.4g} dB (best {best:.4g} at step ")
    assert "at step 0)" not in trained.metric
    record = json.loads((results["out"] / "eval_onnx" / "summary.json").read_text())
    assert rows["eval_onnx"].kind == "eval" and rows["eval_onnx"].metric.startswith(f"PSNR {record['psnr']:.4g} dB")
    sweep = rows["ruas_demo-sweep-20000101-000000"]
    assert (sweep.kind, sweep.status, sweep.genotype) == ("sweep", "2 of 3 trials finished", "bbbbbbbbbbbb")
    assert sweep.metric == "best PSNR 18.25 dB (trial 1)"


def test_an_evaluation_without_ground_truth_lists_its_no_reference_scores(tmp_path):
    folder = tmp_path / "eval-darkface5"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"images": 5, "niqe": 3.0031, "brisque": 12.9594,
                                                     "brightness": 0.1326, "ground_truth": False}))
    (row,) = list_runs(tmp_path)
    assert (row.kind, row.metric) == ("eval", "NIQE 3.003, BRISQUE 12.96 (5 images)")


def test_foreign_and_torn_folders_are_unreadable_rows(results):
    rows = _rows(results)
    for name in ("photos", "torn", "garbled"):
        assert rows[name].status == "unreadable" and rows[name].problem, name
    assert "not a run folder" in rows["photos"].problem and "config.yaml" in rows["torn"].problem


def test_the_command_lists_oldest_first_without_torch(results):
    code = ("import sys\nfrom nas_llv.cli import main\n"
            f"code = main(['runs', {str(results['out'])!r}])\n"
            "print('torch imported' if 'torch' in sys.modules else 'no torch', code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert lines[-1] == "no torch 0" and "Traceback" not in done.stderr, done.stderr
    table = lines[:-1]
    assert table[0].split() == ["name", "kind", "status", "steps", "metric", "genotype"] and len(table) == 9
    order = [line.split()[0] for line in table[1:]]
    assert order[0] == "ruas_demo-sweep-20000101-000000"  # the time in its name is the oldest
    named = [n for n in order if n.startswith("ruas_demo")]
    assert named.index(results["stopped"].dir.name) < named.index(results["searched"].dir.name) \
        < named.index(results["trained"].dir.name)
    assert sum("unreadable" in line for line in table) == 3


def test_json_and_one_run_folder(results, capsys):
    assert main(["runs", str(results["out"]), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 8 and {"name", "kind", "status", "steps", "metric", "genotype", "problem"} <= set(listed[0])
    assert main(["runs", str(results["searched"].dir)]) == 0  # a run folder itself: its one line
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].startswith(results["searched"].dir.name)


def test_an_empty_or_missing_folder(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 0 and capsys.readouterr().out == f"no run folders in {tmp_path}\n"
    assert main(["runs", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == f"nas-llv runs: error: {tmp_path / 'nope'}: no such folder"


def test_an_unreadable_line_keeps_the_columns_aligned(results):
    lines = table_lines(list_runs(results["out"]))
    status_at, genotype_at = lines[0].index("status"), lines[0].index("genotype")
    assert all(line[status_at:].startswith(("unreadable", "finished", "stopped", "2 of 3")) for line in lines[1:])
    readable = [line for line in lines[1:] if "unreadable" not in line]
    assert all(line[genotype_at - 2:genotype_at] == "  " and line[genotype_at] != " " for line in readable)


def test_a_run_being_written_is_running(tmp_path):
    import socket

    from nas_llv.runs import Run
    from nas_llv.runview import RunFolder

    run = Run.create({"name": "x"}, "x", root=tmp_path)  # this process holds its lock
    try:
        run.trajectory_writer.append({"step": 3, "phase": "train"})
        assert RunFolder(run.dir).status == "running, at step 3"
    finally:
        run.close()
    assert RunFolder(run.dir).status == "stopped at step 3"  # released: a checkpoint's step to resume from
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run.dir / ".lock").write_text(f"pid={gone.stdout.strip()}\nhost={socket.gethostname()}\nstarted=x\n")
    assert RunFolder(run.dir).status == "stopped at step 3"  # a killed writer's lock names a dead process
