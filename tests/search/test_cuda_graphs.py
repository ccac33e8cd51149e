"""``speed.cuda_graphs`` (issue 29, item 3): on CUDA the network's modules are compiled in
``reduce-overhead`` mode, each compiled forward and backward replayed as one CUDA graph, and each call's
outputs cloned out of the graphs' memory; elsewhere one log line, and the run goes on as ``speed.compile``
says. The CPU tests check the wiring and the fallback; ``pytest -m cuda`` checks that a graphed search
follows the eager one on the device and that no graph was skipped.
"""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

from conftest import RECIPES
from nas_llv import pipeline, speed
from nas_llv.cli import main
from nas_llv.recipe import SpeedConfig, load_recipe
from nas_llv.results import load_trajectory
from test_compile_exact import CUDA_TOL, TWENTY_STEPS, assert_same_search, search
from test_compile_whole import small_spaces


# a demo search of 8 level steps: 2 training images at batch 1, 2 epochs
TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "search.epochs=2"]


def speed_of(*overrides: str):
    return load_recipe(RECIPES / "ruas_demo.yaml", list(overrides)).speed


@pytest.mark.parametrize("overrides, device, compiles, graphs", [
    ([], "cpu", False, False),
    (["speed.cuda_graphs=true"], "cpu", False, False),
    (["speed.cuda_graphs=true", "speed.compile=true"], "cpu", True, False),
    (["speed.cuda_graphs=true"], "cuda", True, True),
    (["speed.compile=true"], "cuda", True, False),
])
def test_graphs_are_captured_on_cuda_only_and_compile_there(overrides, device, compiles, graphs):
    s = speed_of(*overrides)
    assert (s.compiles(torch.device(device)), s.graphs(torch.device(device))) == (compiles, graphs)


class Twice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> dict[str, object]:
        return {"y": self.w * x, "ys": [x + self.w]}


@pytest.mark.parametrize("device, mode", [("cuda", "reduce-overhead"), ("cpu", None)])
def test_apply_speed_compiles_in_reduce_overhead_mode_on_cuda(monkeypatch, device, mode):
    """The compile call itself (recorded, not run: no CUDA here): reduce-overhead mode on a CUDA device;
    on CPU with ``compile`` too, inductor's default mode."""
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    net = nn.Sequential(Twice())
    speed.apply_speed(net, speed_of("speed.cuda_graphs=true", "speed.compile=true"), torch.device(device), "search")
    assert len(calls) == 1 and calls[0].get("mode") == mode


def test_a_graphed_call_hands_out_clones_that_autograd_goes_through(monkeypatch):
    """The outputs are new tensors, equal to the compiled function's, nested ones too, and the gradient
    reaches the parameter through the clone."""
    returned = {}

    def fake_compile(fn, **kw):
        def run(*args):
            returned["out"] = fn(*args)
            return returned["out"]
        return run
    monkeypatch.setattr(torch, "compile", fake_compile)
    m = Twice()
    speed.compile_modules([m], "test", graphs=True)
    out = m(torch.tensor([1.0, 2.0]))
    for got, raw in [(out["y"], returned["out"]["y"]), (out["ys"][0], returned["out"]["ys"][0])]:
        assert torch.equal(got, raw) and got.data_ptr() != raw.data_ptr()
    (out["y"].sum() + out["ys"][0].sum()).backward()
    assert m.w.grad == 3.0 + 2.0  # d(w*x)/dw summed over x, plus d(x+w)/dw twice


def test_on_cpu_the_search_says_so_once_and_runs_eagerly(tmp_path, caplog):
    """The fallback: one line, then the same search as without the option, bit for bit."""
    with caplog.at_level(logging.WARNING, logger="nas_llv"):
        graphed = pipeline.search(RECIPES / "ruas_demo.yaml", [*TINY, "speed.cuda_graphs=true"], output=tmp_path / "g")
    plain = pipeline.search(RECIPES / "ruas_demo.yaml", TINY, output=tmp_path / "p")
    lines = [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]
    assert lines == ["search: speed.cuda_graphs needs a CUDA device; on cpu the search runs eagerly"]
    a, b = (load_trajectory(r.dir).drop(columns="seconds") for r in (graphed, plain))
    assert a["prob"].notna().sum() > 50 and a.equals(b)


def test_every_search_and_training_iteration_starts_a_new_graph_step(tmp_path, monkeypatch):
    """With graphs on (forced here, the compile call left out: no CUDA), each iteration of a search and
    of a training tells torch's CUDA graphs that a new step begins, once; without graphs, never."""
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    pipeline.search(RECIPES / "ruas_demo.yaml", TINY, output=tmp_path / "plain")
    assert marks == []
    monkeypatch.setattr(SpeedConfig, "graphs", lambda self, device: True)
    monkeypatch.setattr(speed, "compile_modules", lambda modules, where, graphs=False: None)
    run = pipeline.search(RECIPES / "ruas_demo.yaml", TINY, output=tmp_path / "graphed")
    steps = load_trajectory(run.dir)["step"].max()
    assert len(marks) == steps // 2  # two level steps (scene, task) an iteration
    marks.clear()
    assert main(["train", str(run.dir), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), "train.steps=3",
                 "data.demo_count=4", "data.demo_size=32", "data.crop=16", "--output", str(tmp_path / "train")]) == 0
    assert len(marks) == 3


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_a_graphed_cuda_search_follows_the_eager_one(tmp_path, monkeypatch):
    """Finite differences, 20 steps, TF32 off: the graphed search within the CUDA tolerance of the eager
    CUDA one (test_compile_exact's), and no compiled graph left out of the CUDA graphs."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    spaces = small_spaces(tmp_path)
    eager = search(tmp_path / "eager", "finite_difference", "cuda", False, spaces)
    graphed = search(tmp_path / "graphed", "finite_difference", "cuda", True, spaces, ["speed.cuda_graphs=true"])
    assert counters["inductor"]["cudagraph_skips"] == 0, "a compiled graph was not captured (see the log)"
    assert_same_search(eager, graphed, CUDA_TOL)
