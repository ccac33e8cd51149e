"""``search.arch_warmup``: the first epochs train the weights only, α held, then α moves with its
own lr schedule over the epochs left; refused where α is not stepped per iteration."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY_RUAS, tiny_searcher
from nas_llv.config import ConfigError
from nas_llv.space.supernet import arch_parameters

TINY = {
    **TINY_RUAS,
    "search": {"epochs": 3, "steps_per_epoch": 1, "val_batches": 1, "checkpoint_every": 10,
               "weights": {"lr": 0.01}, "arch": {"lr": 0.05, "betas": [0.5, 0.999]},
               "hypergrad": {"type": "first_order"}},
}


def _alphas(s) -> list[torch.Tensor]:
    return [a.detach().clone() for a in arch_parameters(s.net)]


def test_alpha_is_held_during_the_warmup_and_moves_after(tmp_path):
    s = tiny_searcher(TINY, tmp_path, 0, arch_warmup=2)
    try:
        start, weights = _alphas(s), [p.detach().clone() for p in s.levels["task"].lower.values()]
        for epoch in range(3):
            s.advance(0.0)
            alphas = _alphas(s)
            assert all(torch.equal(a, b) for a, b in zip(alphas, start)) == (epoch < 2)
            if epoch == 0:  # the weights did train
                assert not all(torch.equal(p, w) for p, w in zip(s.levels["task"].lower.values(), weights))
        assert s.best["epoch"] == 3  # the held epochs' α is no choice
        # α's cosine spans the one epoch after the warm-up: its lr is at the schedule's start there
        assert len(s.active_epochs("task", arch=True)) == 1 and len(s.active_epochs("task")) == 3
    finally:
        s.close()


@pytest.mark.parametrize("keys, message", [
    ({"arch_warmup": 3}, "arch_warmup=3 must be <= 2"),
    ({"arch_warmup": 1, "strategy": "random"}, "leave it 0 for random"),
])
def test_refused(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        tiny_searcher(TINY, tmp_path, 0, **keys)
