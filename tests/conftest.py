from __future__ import annotations

import os
from pathlib import Path

# Tiny tensors run fastest, and steadiest on a busy machine, on one thread (the CLI's default
# thread count follows OMP_NUM_THREADS, so tests that call it in-process keep one too).
os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def grads_ok(module, *inputs) -> None:
    """Every input and every parameter of ``module`` got a finite gradient."""
    for t in inputs:
        assert t.grad is not None and torch.isfinite(t.grad).all()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
