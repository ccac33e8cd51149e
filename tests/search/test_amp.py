"""The speed options that are not exact or not on by default: ``speed.amp: bf16`` (within a stated
tolerance of float32) and ``speed.compile`` (compiled, or eager after one log line)."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from nas_llv import speed
from test_speed_exact import alpha_trajectory, demo_searcher

# docs/speed.md states these: after 20 demo steps (10 iterations of scene + task, Adam lr 3e-3)
# bf16 autocast keeps every α within 0.03 of float32's (Adam moves an α at most about 0.06 in
# 20 steps; measured 0.016 here), and the two runs move α the same way (cosine > 0.8).
AMP_ATOL = 0.03
AMP_COSINE = 0.8


@pytest.mark.parametrize("method", ["finite_difference", "first_order"])
def test_bf16_alpha_after_20_demo_steps_is_within_the_stated_tolerance_of_float32(tmp_path, method):
    stated = ["search.arch.lr=3.0e-3", "search.arch.schedule=constant"]  # the α optimizer the tolerance is for
    ref = alpha_trajectory(demo_searcher(tmp_path, method, stated))
    amp = alpha_trajectory(demo_searcher(tmp_path, method, [*stated, "speed.amp=bf16"]))
    assert torch.isfinite(amp).all()
    assert not torch.equal(amp, ref)  # autocast ran: bf16 rounding changed something
    assert (amp - ref).abs().max() <= AMP_ATOL
    moved_ref, moved_amp = ref[-1] - ref[0], amp[-1] - amp[0]
    assert torch.nn.functional.cosine_similarity(moved_ref, moved_amp, dim=0) > AMP_COSINE


def test_amp_context_autocasts_convolutions_to_bf16():
    conv = nn.Conv2d(3, 3, 3)
    with speed.amp_context("bf16", torch.device("cpu"))():
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.bfloat16
    with speed.amp_context(None, torch.device("cpu"))():
        assert conv(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.05)), nn.Conv2d(4, 3, 1))


def test_compiled_modules_give_the_eager_result_and_keep_their_names(monkeypatch):
    # dynamo and AOTAutograd as speed.compile runs them; the aot_eager backend stands in for
    # inductor, whose C++ build of even this net takes a minute on a 2-core machine
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "aot_eager")
    net, ref = _tiny(), _tiny()
    x = torch.rand(1, 3, 12, 12)
    keys = list(net.state_dict())
    speed.compile_modules(list(net.children()), "test")
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    torch.testing.assert_close(net(x), ref(x))
    assert counters["stats"]["unique_graphs"] >= 1  # torch.compile really traced a graph
    assert list(net.state_dict()) == keys


def test_a_failing_compiler_falls_back_to_eager_with_one_log_line(monkeypatch, caplog):
    def broken(gm, example_inputs):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(speed, "COMPILE_BACKEND", broken)
    torch._dynamo.reset()
    net, ref = _tiny(), _tiny()
    speed.compile_modules(list(net.children()), "search")
    x = torch.rand(1, 3, 12, 12)
    with caplog.at_level(logging.WARNING, logger="nas_llv.speed"):
        for _ in range(3):
            torch.testing.assert_close(net(x), ref(x))
    lines = [r.getMessage() for r in caplog.records if r.name == "nas_llv.speed"]
    assert len(lines) == 1 and lines[0].startswith("search: torch.compile failed") and "running eagerly" in lines[0]
