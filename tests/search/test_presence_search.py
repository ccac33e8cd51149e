"""search.presence (search/extensions/presence.py): a presence label's upper gradient is the loss
with its sub-network against the loss without it, exactly; the weight steps train it present; a
tiny search on the capacity space logs the gain; what the extension refuses."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from conftest import TINY_RUAS, tiny_searcher
from nas_llv.config import ConfigError
from nas_llv.registry import HYPERGRADS
from nas_llv.runs import Run
from nas_llv.search.extensions.presence import expected_loss
from nas_llv.space.supernet import MixedGate

GATE = "denoise.presence"
TINY = {
    **TINY_RUAS,
    "network": {"type": "ruas", "spaces": {"scene": "ruas_scene", "denoise": "ruas_denoise_capacity"}},
    "losses": {"scene": {"type": "ruas_scene"}, "task": {"type": "l1"}},
    "data": {"type": "synth", "synth_count": 4, "synth_size": 32, "crop": 16, "batch_size": 1},
    "search": {"epochs": 2, "steps_per_epoch": 1, "val_batches": 1, "checkpoint_every": 1,
               "weights": {"lr": 0.01}, "arch": {"lr": 0.05, "betas": [0.5, 0.999]},
               "hypergrad": {"type": "first_order"}},
}


def _gate(s) -> MixedGate:
    (gate,) = [m for m in s.net.modules() if isinstance(m, MixedGate)]
    return gate


def _double(batch):
    return {k: v.double() if torch.is_tensor(v) else v for k, v in batch.items()}


@pytest.fixture
def searcher(tmp_path):
    s = tiny_searcher(TINY, tmp_path, seed=0, presence={"weights": "present"})
    s.net.double()
    with torch.no_grad():  # α off its uniform start, so p is not 1/2
        for p in s.levels["task"].upper.values():
            p.add_(0.5 * torch.randn_like(p))
    yield s
    s.close()


def test_the_gate_label_gets_exactly_the_loss_with_against_without(searcher):
    """first_order: ∂E[L]/∂α_gate = (L_on - L_off)·∂p/∂α_gate, with L_on and L_off the task
    level's plain upper loss evaluated with the denoiser forced present and absent."""
    s, gate = searcher, _gate(searcher)
    level = s.levels["task"]
    train_b, val_b = _double(s._batch(s.train_data)), _double(s._batch(s.val_data))
    name = next(n for n, a in level.upper.items() if a is gate._arch[GATE])
    alpha = level.upper[name].detach().clone()
    losses = {}
    with torch.no_grad():
        for on in (1.0, 0.0):
            gate.forced = on
            losses[on] = float(level.objective(val_b, False)({})[0])
    gate.forced = 1.0
    p = torch.softmax(alpha, 0)[gate.present]
    dp = p * (1 - p) * torch.tensor([-1.0, 1.0], dtype=torch.float64)  # ∂p/∂α over (none, denoiser)
    level.arch_opt = torch.optim.SGD(list(level.upper.values()), lr=0.0)
    level.arch_step(HYPERGRADS.build({"type": "first_order"}), train_b, val_b)
    grad = level.upper[name].grad
    assert abs(losses[1.0] - losses[0.0]) > 1e-4  # the two choices differ: the check can fail
    torch.testing.assert_close(grad, (losses[1.0] - losses[0.0]) * dp, rtol=1e-9, atol=1e-12)
    assert s.extension("presence").gains[GATE] == pytest.approx(losses[0.0] - losses[1.0], rel=1e-9)
    assert gate.forced == 1.0  # held present again after the arch step


def test_expected_loss_over_two_gates_is_the_product_expectation():
    class Gate:
        def __init__(self, label):
            self.label, self.present, self.forced = label, 1, 1.0

    a, b = Gate("a"), Gate("b")
    probs = {"a": torch.tensor([0.7, 0.3]), "b": torch.tensor([0.4, 0.6])}
    table = {(1.0, 1.0): 1.0, (1.0, 0.0): 2.0, (0.0, 1.0): 3.0, (0.0, 0.0): 5.0}
    total, gains = expected_loss([a, b], probs, lambda: torch.tensor(table[(a.forced, b.forced)]), restore=None)
    pa, pb = 0.3, 0.6
    want = pa * pb * 1 + pa * (1 - pb) * 2 + (1 - pa) * pb * 3 + (1 - pa) * (1 - pb) * 5
    assert float(total) == pytest.approx(want)
    assert float(gains["a"]) == pytest.approx(pb * (3 - 1) + (1 - pb) * (5 - 2))  # L(a absent) - L(a present)
    assert float(gains["b"]) == pytest.approx(pa * (2 - 1) + (1 - pa) * (5 - 3))
    assert a.forced is None and b.forced is None


def test_weight_steps_train_the_denoiser_as_present(searcher):
    s, gate = searcher, _gate(searcher)
    assert gate.forced == 1.0
    batch = _double(s._batch(s.train_data))
    level = s.levels["task"]
    with torch.no_grad():
        held = float(level.objective(batch, True)({})[0])
        gate.forced = None  # the soft gate: w·r
        soft = float(level.objective(batch, True)({})[0])
        gate.forced = 1.0
    assert held != pytest.approx(soft)


def test_a_tiny_search_logs_the_gain_and_writes_a_presence_choice(tmp_path):
    s = tiny_searcher(TINY, tmp_path, seed=0, presence={})
    s.run()
    s.close()
    run = Run(s.attached_run.dir)
    frame = pd.read_csv(run.trajectory_path)
    gains = frame[f"presence/{GATE}/gain"].dropna()
    assert len(gains) >= 2 and gains.abs().gt(0).all()
    assert run.genotype[GATE] in ("none", "denoiser")


def test_refused_without_a_presence_label_and_for_drawn_candidates(tmp_path):
    plain = {**TINY, "network": TINY_RUAS["network"]}
    with pytest.raises(ConfigError, match="search.presence: the search space has no presence label"):
        tiny_searcher(plain, tmp_path, seed=0, presence={})
    with pytest.raises(ConfigError, match="presence does not apply to strategy random"):
        tiny_searcher(TINY, tmp_path, seed=0, presence={}, strategy="random")
