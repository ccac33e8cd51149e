from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

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


def assert_same_output_and_grads(first, second) -> None:
    """Two (output, gradients) pairs of one network on two paths agree; a gradient missing
    (``allow_unused``) on one path is missing on the other."""
    torch.testing.assert_close(first[0], second[0])
    for a, b in zip(first[1], second[1], strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


def central_differences(f: Callable[[dict[str, torch.Tensor]], torch.Tensor], at: dict[str, torch.Tensor],
                        eps: float = 1e-6) -> dict[str, torch.Tensor]:
    """The gradient of scalar ``f`` at ``at`` (name -> float64 tensor) by central differences,
    (f(x + eps e_i) - f(x - eps e_i)) / 2 eps for every entry i of every tensor."""
    out = {}
    with torch.no_grad():
        for name, x in at.items():
            grad = torch.zeros_like(x)
            for i in range(x.numel()):
                step = torch.zeros_like(x).view(-1)
                step[i] = eps
                step = step.view_as(x)
                grad.view(-1)[i] = (f({**at, name: x + step}) - f({**at, name: x - step})) / (2 * eps)
            out[name] = grad
    return out


def stopped_and_resumed(searcher, stop_after: int):
    """``searcher`` run for ``stop_after`` steps, then a new Searcher built from its run folder alone
    (config.yaml, checkpoints/last.pt) and run to the end; returns the new one."""
    from nas_llv.recipe import recipe_from_dict
    from nas_llv.runs import Run
    from nas_llv.search.loop import Searcher

    assert searcher.run(stop_after=stop_after) is False
    searcher.attached_run.close()
    run = Run.open(searcher.attached_run.dir)
    again = Searcher(recipe_from_dict(run.config(), "config.yaml"))
    again.attach(run)
    again.load_state_dict(run.load_checkpoint())
    assert again.run() is True
    return again


# the RUAS network on 32 px demo images at 16 px crops, batch 1: a tiny search recipe with its own
# ``search:`` section, for ``tiny_searcher``
TINY_RUAS = {
    "name": "tiny",
    "network": {"type": "ruas", "spaces": {"scene": "ruas_scene", "denoise": "ruas_denoise"}},
    "data": {"type": "demo", "demo_count": 4, "demo_size": 32, "crop": 16, "batch_size": 1},
    "losses": {"scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}},
}


def tiny_searcher(base: dict, root: Path, seed: int | None = None, **search):
    """A Searcher of the tiny recipe ``base`` with ``search`` keys replaced (and ``seed`` when
    given), attached to a new run folder under ``root``."""
    import yaml

    from nas_llv.recipe import recipe_from_dict
    from nas_llv.runs import Run
    from nas_llv.search.loop import Searcher

    data = yaml.safe_load(yaml.safe_dump(base))
    if seed is not None:
        data["seed"] = seed
    data["search"].update(search)
    recipe = recipe_from_dict(data, "tiny.yaml")
    searcher = Searcher(recipe)
    searcher.attach(Run.create(recipe.to_dict(), recipe.name, root))
    return searcher


# -- the export tests' inputs: sample images and the published CVPR RUAS network -------------------

@pytest.fixture
def sample_images() -> Callable[[int], list[torch.Tensor]]:
    """``sample_images(count=2)``: tiny random images at two sizes (one odd, batch 2), plus ``count``
    shared MIT images (500x333) where present."""
    from nas_llv.data import list_images, read_image

    def make(count: int = 2) -> list[torch.Tensor]:
        images = [torch.rand(1, 3, 16, 24), torch.rand(2, 3, 21, 13)]
        mit = SHARED_DATA / "mit5" / "low"
        if mit.is_dir():
            images += [read_image(p)[None] for p in list_images(mit)[:count]]
        return images
    return make


@pytest.fixture
def cvpr_ruas() -> torch.nn.Module:
    """The CVPR RUAS network with the published ``lol.pt`` weights where present, else random ones."""
    from nas_llv.export.ruas_import import import_ruas, ruas_genotype

    weights = SHARED_DATA / "ruas_cvpr_weights" / "lol.pt"
    return import_ruas(weights)[0] if weights.is_file() else ruas_genotype("cvpr", "ruas").build().eval()


HOST_READS = ("item", "tolist", "__float__", "__bool__", "__int__", "__index__")


def count_host_reads(monkeypatch) -> list[tuple[str, str, int]]:
    """Record each host read of a tensor's value made directly by nas_llv's code, outside the data
    pipeline (whose tensors are the host's own): (method, file, line)."""
    calls: list[tuple[str, str, int]] = []
    for name in HOST_READS:
        def spy(self, *args, _orig=getattr(torch.Tensor, name), _name=name, **kwargs):
            frame = sys._getframe(1)
            where = frame.f_code.co_filename.replace("\\", "/")
            if "/nas_llv/" in where and "/nas_llv/data/" not in where:
                calls.append((_name, where.rsplit("/nas_llv/", 1)[1], frame.f_lineno))
            return _orig(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def host_reads_per_call(monkeypatch, call: Callable[[], object], times: int) -> list[list[tuple[str, str, int]]]:
    """``call()`` ``times`` times: the host reads (``count_host_reads``) each call made."""
    calls = count_host_reads(monkeypatch)
    seen = []
    for _ in range(times):
        before = len(calls)
        call()
        seen.append(calls[before:])
    monkeypatch.undo()
    return seen
