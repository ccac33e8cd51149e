"""Every shipped space compiles once per call context in its search's first iteration (issue 29): a
10-step ``speed.compile`` search of each, from the shipped recipe that searches it (a space no recipe
searches, in a demo recipe's network in its place), breaks no graph, and after its first iteration
compiles no frame and recompiles nothing. Counted with dynamo's eager backend (test_compile_whole.py's
``dynamo`` fixture), at tiny sizes. The space under test is searched whole, with one cell where its
repeats share one α; a module beside it that is not under test is the small variant."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import RECIPES
from nas_llv.recipe import load_recipe
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from test_compile_whole import (CONTEXT_REASONS, SPACES, assert_first_iteration_only, dynamo,  # noqa: F401 - dynamo: the fixture
                                frames, space_file)

STEPS = 10
TINY = ["device=cpu", "data.demo_count=4", "data.demo_size=32", "data.batch_size=1", "search.val_batches=1",
        "search.epochs=5", "search.steps_per_epoch=2", "search.checkpoint_every=1000", "speed.compile=true"]


@dataclass(frozen=True)
class Case:
    """A search: the shipped spaces it searches, its recipe, the frames its first iteration compiles, its
    network.spaces (module -> a shipped space and whether small, ``space_file``; empty: the recipe's own),
    its other overrides and the words of the guard failures it may log."""
    spaces: tuple[str, ...]
    recipe: str
    first_frames: int
    network: dict[str, tuple[str, bool]] = field(default_factory=dict)
    overrides: tuple[str, ...] = ("data.crop=16",)
    reasons: tuple[str, ...] = CONTEXT_REASONS


CASES = [
    Case(("ruas_scene", "ruas_denoise"), "ruas_demo.yaml", 9,
         {"scene": ("ruas_scene", False), "denoise": ("ruas_denoise", False)}),
    Case(("ruas_denoise_capacity",), "ruas_demo.yaml", 9,
         {"scene": ("ruas_scene", True), "denoise": ("ruas_denoise_capacity", False)}),
    Case(("ruas_highlevel",), "ruas_highlevel_demo.yaml", 9,
         {"scene": ("ruas_scene", True), "head": ("ruas_highlevel", False)}),
    Case(("ruas_cell",), "ruas_highlevel_demo.yaml", 9, {"scene": ("ruas_scene", True), "head": ("ruas_cell", False)}),
    # TriCo's two phases, each a search of its own here: S1 (ς, α upper) and S2 (ω_i upper, ς and α frozen).
    # A search that passes from S1 to S2 compiles S2's contexts in S2's first iteration (4 frames, α then
    # the Parameter itself where S1 passed a tensor: a type guard too), and nothing after.
    Case(("trico_llsr",), "llsr_demo.yaml", 7, overrides=("data.crop=8", "search.s2_epochs=0")),
    Case(("trico_llsr",), "llsr_demo.yaml", 7, overrides=("data.crop=8", "search.s2_epochs=5")),
    # CollaBA's reconstruction part runs at two scales: one graph per input size
    Case(("collaba_llsr",), "collaba_demo.yaml", 17, overrides=("data.crop=8",),
         reasons=(*CONTEXT_REASONS, "size mismatch")),
]


def test_the_cases_search_every_shipped_space():
    assert {s for case in CASES for s in case.spaces} == set(SPACES)


def searcher(tmp_path, case: Case) -> Searcher:
    overrides = list(case.overrides)
    if case.network:
        spaces = ", ".join(f"{module}: {space_file(tmp_path, space, small)}"
                           for module, (space, small) in case.network.items())
        overrides.append(f"network.spaces={{{spaces}}}")
    recipe = load_recipe(RECIPES / case.recipe, [*TINY, *overrides])
    searched = {Path(v).stem.removeprefix("one_") for v in recipe.network.spaces.values()}
    assert set(case.spaces) <= searched, (case.spaces, searched)
    s = Searcher(recipe)
    s.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    return s


@pytest.mark.parametrize("case", CASES, ids=["+".join(c.spaces) + f"@{c.recipe.removesuffix('.yaml')}"
                                              + ("-S2" if "search.s2_epochs=5" in c.overrides else "") for c in CASES])
def test_a_search_of_every_space_compiles_each_step_once_in_its_first_iteration(dynamo, tmp_path, case, caplog):
    """The first iteration compiles ``case.first_frames`` graphs, each recompile told apart by the call
    context only; the steps up to ``STEPS`` compile no frame, log no recompile and break no graph (nor
    reach dynamo's recompile limit: the ``dynamo`` fixture makes that fail)."""
    recompiles = dynamo
    s = searcher(tmp_path, case)
    with contextlib.closing(s):
        s.advance(0.0)
        first, logged = frames(), list(recompiles)
        while s.step < STEPS:
            s.advance(0.0)
    assert not [r for r in caplog.records if r.name == "nas_llv.speed"]  # no fallback to eager
    assert_first_iteration_only(first, logged, recompiles, case.first_frames, case.reasons)
