"""Folding a derived network for inference (nas_llv.space.fold, ``enhance --engine fast``): the
folded network gives the plain one's outputs within 1e-5 (the published CVPR network on random and
real images, and derived networks of the RUAS space with every op kind), has fewer convolutions
where edges share a source, and leaves what does not fold (mixed edges, the noise estimator) alone."""
from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from nas_llv.cli import main
from nas_llv.space.fold import FoldedCell, Term, fold, merge, shifted_max
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.space.genotype import Genotype, declared_labels
from nas_llv.space.models import build_supernet
from nas_llv.space.models.ruas import NoiseEstimator, local_max
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import Cell

TOL = 1e-5
CELL_OPS = load_space("ruas_cell").cell.ops


def _tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for v in out.values() for t in (v if isinstance(v, list) else [v])]


@torch.no_grad()
def _assert_same(plain: torch.nn.Module, folded: torch.nn.Module, images: list[torch.Tensor]) -> None:
    for y in images:
        a, b = _tensors(plain(y)), _tensors(folded(y))
        assert len(a) == len(b)
        for s, t in zip(a, b):
            assert s.shape == t.shape
            assert float((s - t).abs().max()) <= TOL


def _convs(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) for m in module.modules())


def test_merge_is_the_sum_of_its_terms():
    torch.manual_seed(1)
    x = torch.rand(1, 4, 11, 9, dtype=torch.float64)
    w3, w3d, w1 = (torch.randn(4, 4, k, k, dtype=torch.float64) for k in (3, 3, 1))
    b3, b3d, b1 = (torch.randn(4, dtype=torch.float64) for _ in range(3))
    same = F.conv2d(x, w3d, b3d, padding=2, dilation=2) + F.conv2d(x, w1, b1) + 1.5 * x
    merged = merge([Term("x", w3d, b3d, 2), Term("x", w1, b1), Term("x", scale=1.5)])
    assert (merged.size, merged.dilation) == (3, 2)  # a shared dilation is kept: no dense 5x5
    got = F.conv2d(x, merged.weight, merged.bias, padding=2, dilation=2)
    assert torch.allclose(got, same, atol=1e-12)
    mixed = same + F.conv2d(x, w3, b3, padding=1)
    merged = merge([Term("x", w3d, b3d, 2), Term("x", w1, b1), Term("x", scale=1.5), Term("x", w3, b3)])
    assert (merged.size, merged.dilation) == (5, 1)  # dilations differ: one dense 5x5
    assert torch.allclose(F.conv2d(x, merged.weight, merged.bias, padding=2), mixed, atol=1e-12)
    assert merge([Term("x", scale=1.0), Term("x", scale=1.0)]).weight is None  # identities alone: 2 * x


@pytest.mark.parametrize("window", [2, 3])
def test_shifted_max_is_local_max(window):
    x = torch.randn(2, 3, 13, 8)
    assert torch.equal(shifted_max(x, window), local_max(x, window))


def test_cvpr_network_folds_exactly(cvpr_ruas, sample_images):
    net = cvpr_ruas
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = fold(net)
    _assert_same(net, fast, sample_images())
    # the denoiser's c1 and c3 edges read one source each: 6 convolutions per block become 4
    block = fast.net.denoise.blocks[0]
    assert isinstance(block, FoldedCell) and len(block.convs) == 3
    assert _convs(fast) == _convs(net) - 2 * len(net.denoise.blocks)
    assert fast.net.denoise.stem.weight.is_contiguous(memory_format=torch.channels_last)
    # the plain network is left as it was
    assert all(isinstance(c, Cell) for c in net.scene.stages)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                    reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_fold_matches_plain_at_two_sizes():
    """One compilation (dynamic sizes) serves both sizes, within float rounding (a one-stage scene
    module: compiling the whole CVPR network takes a minute here)."""
    net = ruas_genotype("cvpr", "ruas_s").build(repeat=1).eval()
    _assert_same(net, fold(net, compile=True), [torch.rand(1, 3, 16, 24), torch.rand(2, 3, 21, 13)])


def _genotype(choose) -> Genotype:
    base = ruas_genotype("cvpr", "ruas")
    labels = declared_labels(base.network, base.spaces)
    return Genotype(base.network, base.spaces, {label: choose(label) for label in labels})


@pytest.mark.parametrize("op", CELL_OPS)
def test_every_op_folds_exactly(op, sample_images):
    net = _genotype(lambda label: op).build().eval()  # random weights (default init)
    fast = fold(net, channels_last=False)
    _assert_same(net, fast, sample_images(0))
    cells = [m for m in fast.modules() if isinstance(m, FoldedCell)]
    assert len(cells) == 6 and not any(isinstance(m, Cell) for m in fast.modules())
    # convolutions: one per source of the non-fusing edges (x, r1, r2, r3), none for skips
    assert all(len(c.convs) == (0 if op == "skip" else 4) for c in cells)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_genotypes_fold_exactly(seed, sample_images):
    rng = random.Random(seed)
    net = _genotype(lambda label: rng.choice(CELL_OPS)).build().eval()
    _assert_same(net, fold(net), sample_images(1))


def test_what_does_not_fold_is_left_alone():
    space = load_space("ruas_cell")
    supernet = build_supernet(space).net.eval()
    with torch.no_grad():
        for p in supernet.arch.parameters():
            p.normal_()
    fast = fold(supernet)
    assert any(isinstance(m, Cell) for m in fast.modules())  # mixed edges: not a derived cell
    assert not any(isinstance(m, FoldedCell) for m in fast.modules())
    _assert_same(supernet, fast, [torch.rand(1, 3, 12, 10)])


@pytest.mark.parametrize("threshold", [0.0, 1e9], ids=["gate-open", "gate-shut"])
def test_ruas_a_keeps_its_estimator_and_gate(threshold):
    net = ruas_genotype("tpami", "ruas_a").build(channels={"denoise": 6}, repeat={"denoise": 1}).eval()
    net.threshold = threshold
    fast = fold(net)
    assert isinstance(fast.net.estimator, NoiseEstimator)
    _assert_same(net, fast, [torch.rand(2, 3, 16, 12)])


def test_enhance_engine_fast_writes_the_same_images(tmp_path, cvpr_ruas):
    net = cvpr_ruas
    model = save_model(tmp_path / "model.pt", ruas_genotype("cvpr", "ruas"), net)
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 80, (19, 26, 3), dtype=np.uint8)).save(src / f"{i}.png")
    for engine in ("torch", "fast"):
        assert main(["enhance", str(model), str(src), str(tmp_path / engine), "--engine", engine, "-q"]) == 0
    for i in range(2):
        a, b = (np.asarray(Image.open(tmp_path / e / f"{i}.png"), dtype=int) for e in ("torch", "fast"))
        assert np.abs(a - b).max() <= 1  # rounding to 8 bits may move a value by one level
