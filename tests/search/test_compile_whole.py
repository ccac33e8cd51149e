"""``speed.compile`` traces the supernet whole (docs/speed.md, "compile"): every shipped space's supernet
forward is one graph, with either relaxation, merged edges or not, with DARTS-' auxiliary skip and SDARTS'
perturbed α; the cost and zero-one terms are one graph each; and a search compiles each level's forward once per
call context, in its first iteration: later steps, with α, β and the perturbations changing, compile nothing.
Counted with dynamo's own counters on its eager backend (tracing only, no C++ compile)."""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from conftest import RECIPES
from nas_llv import speed
from nas_llv.search.extensions.aux_skip import AuxSkipConfig, apply_aux_skip
from nas_llv.search.extensions.fair import ZeroOne
from nas_llv.search.extensions.perturb import uniform_noise
from nas_llv.search.level import call
from nas_llv.space.models import build_supernet
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import arch_modules
from test_speed_exact import demo_searcher

SPACES = sorted(p.stem for p in (RECIPES.parent / "search_spaces").glob("*.yaml"))


@pytest.fixture
def dynamo(monkeypatch):
    """speed.compile on dynamo's eager backend, with fresh caches and counters; yields the list the
    recompile log lines (dynamo's ``recompiles`` artifact) are appended to. A frame at dynamo's
    recompile limit fails (it would run eagerly from then on, unseen by the counters)."""
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    counters.clear()
    recompiles: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: recompiles.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("torch._dynamo.guards.__recompiles")
    torch._logging.set_logs(recompiles=True)
    log.addHandler(handler)
    try:
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            yield recompiles
    finally:
        log.removeHandler(handler)
        torch._logging.set_logs()
        torch._dynamo.reset()


def breaks() -> int:
    return sum(counters["graph_break"].values())


def frames() -> int:
    """Frames dynamo compiled (each compile of a recompiled frame counts)."""
    return counters["frames"]["ok"]


def _input(space) -> torch.Tensor:
    """A tiny batch for the space's model: its cell width for a bare cell stack, else an RGB image."""
    return torch.rand(1, space.cell.channels if space.model.get("type") == "cell_stack" else 3, 12, 12)


@pytest.mark.parametrize("merge", [True, False], ids=["merged", "unmerged"])
@pytest.mark.parametrize("relaxation", ["softmax", "sigmoid"])
@pytest.mark.parametrize("space", SPACES)
def test_every_shipped_supernet_forward_is_one_graph(dynamo, space, relaxation, merge):
    """The forward a weight step runs (α perturbed through a functional call, β on every mixed edge)
    compiles to one graph with no break, and computes what the eager forward computes."""
    spec = load_space(space)
    net = build_supernet(spec, merge_edges=merge, relaxation=relaxation).net.eval()
    apply_aux_skip(net, AuxSkipConfig(weight=0.5), 1, 4)
    alphas = {n: p for n, p in net.named_parameters() if ".alphas." in n}
    overrides = uniform_noise(alphas, 0.03)
    x = _input(spec)
    with torch.no_grad():
        eager = call(net, overrides, x)
        speed.compile_modules([net], "test")
        compiled = call(net, overrides, x)
    assert frames() == 1 and breaks() == 0 and counters["stats"]["unique_graphs"] == 1
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)


def test_a_new_aux_skip_weight_recompiles_nothing(dynamo):
    """β decays per epoch; the compiled forward takes it as an input (a Python float would be a
    constant of the graph, and the first new value would recompile every call context)."""
    recompiles = dynamo
    net = build_supernet(load_space("ruas_cell")).net
    speed.compile_modules([net], "test")
    x = torch.rand(1, 3, 12, 12)
    for epoch in range(4):
        apply_aux_skip(net, AuxSkipConfig(weight=0.5), epoch, 4)
        net(x)
        with torch.no_grad():  # a second call context, as the epoch's validation is
            net(x)
    assert frames() == 2 and not recompiles[1:], recompiles  # one compile per context, one recompile between them


def test_the_cost_and_zero_one_terms_are_one_graph_each(dynamo):
    from nas_llv.search.extensions.cost import CostPenalty
    from nas_llv.space.cost import measure

    net = build_supernet(load_space("ruas_denoise_capacity"), relaxation="sigmoid").net
    (arch,) = arch_modules(net)
    probs = {label: arch.prob(label, a + 0.1) for label, a in arch.items()}
    cost = CostPenalty(measure(net, "flops", (16, 16)), net, target=1e-6, weight=1.0)
    for term in (cost, ZeroOne(10.0)):
        want = term(probs)
        torch.testing.assert_close(torch.compile(term, backend="eager")(probs), want, rtol=0, atol=0)
    assert breaks() == 0 and frames() == 2


# the demo search with every extension that acts inside a step: α perturbed in the weight steps, the
# auxiliary skip's β decaying per epoch, the sigmoid relaxation with its zero-one loss, the cost hinge
EXTENSIONS = ["search.perturb={epsilon: 0.03}", "search.aux_skip={weight: 0.5}", "search.relaxation=sigmoid",
              "search.zero_one=10", "search.cost={target: 1.0e-6, size: [16, 16]}"]


def space_file(tmp_path: Path, space: str, small: bool = True) -> str:
    """A shipped space with one cell (``repeat: 1``; RUAS's repeats share one α, so every label is still
    searched), written to ``tmp_path``; ``small``: its cell of three ops too (a convolution, a dilated
    residual one, the skip). The same modules and call contexts, traced in a fraction of the time."""
    path = tmp_path / f"{'small' if small else 'one'}_{space}.yaml"
    path.write_text(f"extends: {RECIPES.parent / 'search_spaces' / space}.yaml\nname: {path.stem}\nrepeat: 1\n"
                    + ("cell: {ops: [conv_1x1, resdilconv_3x3_d2, skip]}\n" if small else ""))
    return str(path)


def small_spaces(tmp_path: Path) -> str:
    """The demo's scene and denoise spaces, small (``space_file``)."""
    return (f"network.spaces={{scene: {space_file(tmp_path, 'ruas_scene')}, "
            f"denoise: {space_file(tmp_path, 'ruas_denoise')}}}")


# the compiled graphs a search's first iteration compiles, one per call context of each level's module, which
# differ in what the graph's backward computes (a compiled backward computes a gradient for every input that
# requires grad, so each context gets exactly its own): without grad (the preflight, validation, the scene's
# output a task level reads); ∇_ω at α (the weight step and the unrolled step ω'); ∇_α at ω (the first-order
# upper loss, finite differences' ω ± rv); ∇_α and ∇_ω' at ω' (finite differences' upper loss); and the
# denoiser's input only (the scene level's upper loss reaching α_s through the task loss)
CONTEXTS = {"first_order": 7, "finite_difference": 9}
# what may tell those graphs apart in the recompile log: grad mode and requires_grad
CONTEXT_REASONS = ("grad_mode", "requires_grad mismatch")


def assert_first_iteration_only(first: int, logged: list[str], recompiles: list[str], expected: int,
                                reasons: tuple[str, ...] = CONTEXT_REASONS) -> None:
    """``first`` frames (``expected``) were compiled in the first iteration, whose recompile log lines
    (``logged``) name only guard failures containing one of ``reasons``; since then (``recompiles``:
    the whole log) no frame was compiled, nothing recompiled, and no graph broke."""
    assert first == expected and breaks() == 0, (first, logged)
    lines = [line for m in logged for line in m.splitlines() if line.strip().startswith("- ")]
    assert lines and all(any(k in r for k in reasons) for r in lines), lines
    assert frames() == first and recompiles == logged, recompiles[len(logged):]


@pytest.mark.parametrize("method, extra", [("first_order", EXTENSIONS), ("finite_difference", [])],
                         ids=["first_order+extensions", "finite_difference"])
def test_a_search_compiles_each_step_once_in_its_first_iteration(dynamo, tmp_path, method, extra):
    """The first iteration compiles one graph per call context (``CONTEXTS``), each recompile told apart
    by grad mode or ``requires_grad`` only (no layout, type or Python constant guard), and eight more
    steps over four epochs, with α, β, the perturbations and the lr changing, compile no frame, log no
    recompile and break no graph."""
    recompiles = dynamo
    s = demo_searcher(tmp_path, method, ["speed.compile=true", "search.steps_per_epoch=2", "search.val_batches=1",
                                          "search.epochs=4", small_spaces(tmp_path), *extra])
    alpha = lambda: torch.cat([p.detach().flatten().clone() for n, p in s.net.named_parameters() if ".alphas." in n])
    with contextlib.closing(s):
        s.advance(0.0)  # the first iteration: each level's arch and weight steps
        first, logged, alpha_first = frames(), list(recompiles), alpha()
        while s.step < 16:
            s.advance(0.0)
    assert_first_iteration_only(first, logged, recompiles, CONTEXTS[method])
    assert (alpha() - alpha_first).abs().max() > 1e-3  # α moved under the compiled forwards


def test_explicit_gradients_change_no_step(tmp_path):
    """The weight step with every α and ω passed explicitly (``Level.explicit_grads``, what
    ``speed.compile`` turns on) moves ω and α bit for bit as the plain step does (eager here)."""
    def run(explicit: bool) -> torch.Tensor:
        s = demo_searcher(tmp_path / str(explicit), "finite_difference", ["search.perturb={epsilon: 0.03}"])
        for level in s.levels.values():
            level.explicit_grads = explicit
        with contextlib.closing(s):
            while s.step < 4:
                s.advance(0.0)
        return torch.cat([p.detach().flatten() for p in s.net.parameters()])
    assert torch.equal(run(True), run(False))
