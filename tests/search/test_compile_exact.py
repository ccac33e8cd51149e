"""``speed.compile`` searches what the eager search searches (issue 29, item 4): over 20 demo steps the
trajectory's op probabilities (its ``prob/<edge>/<op>`` columns) and the final genotype of a compiled
search match the eager search's; on CUDA (``pytest -m cuda``) eager CPU, eager CUDA and compiled CUDA.

The runs are real ``nas-llv search`` runs (``nas_llv.pipeline.search``) of ``recipes/ruas_demo.yaml`` at
16x16 crops, batch 1, 5 epochs of 2 iterations (20 level steps), with the demo's own α optimizer (Adam
lr 0.1, which moves the probabilities by up to 0.22 in those steps); the spaces are the demo's with
one cell of three ops (``test_compile_whole.small_spaces``), so inductor's code generation fits in about
a minute per run on 2 cores (a compiled search of the full demo spaces takes several).

Tolerances, and why:
- compiled vs eager on CPU: every probability within **1e-3**. Inductor fuses the forward and the
  backward and reorders their float32 reductions (the convolutions' sums, the losses' means, the
  softmax), so each step's gradients differ in the last bits, about 1e-7 relative. Adam carries that
  forward, and amplifies it where a gradient is a small difference of large terms (near a stationary
  point of α): measured 2026-12-07, the gap stayed at 1e-7 to 3e-7 for 16 steps and then jumped to
  6.5e-5 in one step and 9.2e-5 at step 20 (first order); finite differences 1.8e-7 throughout.
  1e-3 is 10x the largest gap measured and 200x below the 0.22 the probabilities move.
- on CUDA: **1e-2** between any two of eager CPU, eager CUDA and compiled CUDA, with TF32 off (on,
  cuDNN's convolutions round their inputs to 10 bits, and the comparison would be of TF32 with
  float32). cuDNN runs other convolution algorithms than oneDNN, some with atomic (run-to-run
  varying) accumulation, so the same amplification applies to three paths. Not yet measured on a
  GPU: set at 10x the CPU tolerance, to be tightened by the first ``pytest -m cuda`` run's gaps.
- the genotype: the same op on every edge whose two most probable ops differ by more than twice the
  tolerance in the reference run (there, no path within the tolerance can pick another op); an edge
  closer than that is a tie the comparison cannot decide.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from torch._dynamo.utils import counters

from conftest import RECIPES
from nas_llv import pipeline
from nas_llv.results import load_trajectory_wide
from nas_llv.space.genotype import load_genotype
from test_compile_whole import small_spaces

# demo_count 4 with val_ratio 0.5: 2 training images, batch 1, 2 iterations per epoch of 2 level steps
TWENTY_STEPS = ["data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1", "search.epochs=5",
                "search.val_batches=1"]
CPU_TOL, CUDA_TOL = 1e-3, 1e-2


def search(out: Path, method: str, device: str, compiled: bool, spaces: str,
           more: list[str] = ()) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the prob/ columns of the trajectory, one row per step; the genotype's choices) of one search
    (``more``: further overrides)."""
    torch._dynamo.reset()  # compiled afresh (a new module of the same code would reuse an earlier test's code)
    counters.clear()
    run = pipeline.search(RECIPES / "ruas_demo.yaml", [
        *TWENTY_STEPS, spaces, f"device={device}", f"search.hypergrad={{type: {method}}}",
        f"speed.compile={str(compiled).lower()}", *more], output=out)
    if compiled:  # compiled indeed, not fallen back to eager (speed.compile_modules)
        assert counters["frames"]["ok"] > 0 and "torch.compile failed" not in (run.dir / "log.txt").read_text()
    wide = load_trajectory_wide(run.dir)
    assert wide["step"].tolist() == list(range(1, 21))
    return wide[[c for c in wide.columns if c.startswith("prob/")]], load_genotype(run.dir / "genotype.yaml").choices


def decided_edges(probs: pd.DataFrame, tol: float) -> list[str]:
    """The edges whose two most probable ops differ by more than 2 * ``tol`` in the last row."""
    last = probs.iloc[-1]
    by_edge: dict[str, list[float]] = {}
    for column, p in last.items():
        by_edge.setdefault(column.split("/")[1], []).append(float(p))
    return [edge for edge, ps in by_edge.items() if len(ps) > 1 and sorted(ps)[-1] - sorted(ps)[-2] > 2 * tol]


def assert_same_search(ref: tuple[pd.DataFrame, dict[str, str]], other: tuple[pd.DataFrame, dict[str, str]],
                       tol: float) -> None:
    (ref_probs, ref_choices), (probs, choices) = ref, other
    assert list(probs.columns) == list(ref_probs.columns)
    assert (ref_probs.iloc[-1] - ref_probs.iloc[0]).abs().max() > 10 * tol  # the probabilities moved
    gap = (probs - ref_probs).abs().to_numpy().max()
    assert gap <= tol, f"op probabilities differ by up to {gap:.3g} (tolerance {tol:g})"
    decided = decided_edges(ref_probs, tol)
    assert len(decided) >= len(ref_choices) // 2, decided  # most edges decided: the genotype check bites
    assert {e: choices[e] for e in decided} == {e: ref_choices[e] for e in decided}


@pytest.mark.parametrize("method", ["finite_difference", "first_order"])
def test_a_compiled_search_follows_the_eager_one_on_cpu(tmp_path, method):
    spaces = small_spaces(tmp_path)
    eager = search(tmp_path / "eager", method, "cpu", False, spaces)
    assert_same_search(eager, search(tmp_path / "compiled", method, "cpu", True, spaces), CPU_TOL)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_eager_and_compiled_cuda_searches_follow_the_eager_cpu_one(tmp_path, monkeypatch):
    """The recipe's own hypergradient only (finite differences): gpu_check.sh's 8 minutes."""
    method = "finite_difference"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    spaces = small_spaces(tmp_path)
    cpu = search(tmp_path / "cpu", method, "cpu", False, spaces)
    cuda = search(tmp_path / "cuda", method, "cuda", False, spaces)
    compiled = search(tmp_path / "compiled", method, "cuda", True, spaces)
    assert_same_search(cpu, cuda, CUDA_TOL)
    assert_same_search(cpu, compiled, CUDA_TOL)
    assert_same_search(cuda, compiled, CUDA_TOL)
