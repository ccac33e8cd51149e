"""A search steps its optimizers with foreach kernels (``speed.foreach_steps``), which on CPU are
the per-weight loop's arithmetic bit for bit."""
from __future__ import annotations

import pytest
import torch

from nas_llv.speed import foreach_steps
from conftest import tiny_searcher
from test_search import TINY


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.1, betas=(0.5, 0.999), weight_decay=1e-3, foreach=False),
    lambda ps: torch.optim.Adam(ps, lr=3e-3, foreach=False),
    lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4, foreach=False),
])
def test_foreach_steps_are_the_loops_bit_for_bit(make):
    g = torch.Generator().manual_seed(0)
    loop = [torch.randn(s, generator=g, requires_grad=True) for s in [(12, 6, 3, 3), (6,), (3, 3, 1, 1), (7,), (100,)]]
    fore = [p.detach().clone().requires_grad_() for p in loop]
    a, b = make(loop), make(fore)
    foreach_steps([b])
    assert all(group["foreach"] for group in b.param_groups)
    for _ in range(30):
        for p, q in zip(loop, fore):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        a.step()
        b.step()
    assert all(torch.equal(p, q) for p, q in zip(loop, fore))


def test_a_search_steps_with_foreach_kernels(tmp_path):
    s = tiny_searcher(TINY, tmp_path)
    opts = [o for level in s.levels.values() for o in (level.weight_opt, level.arch_opt) if o is not None]
    parts = [p for o in opts for p in (o.parts.values() if hasattr(o, "parts") else [o])]
    assert parts and all(group["foreach"] for o in parts for group in o.param_groups)
    s.close()
