"""Low-light super-resolution models through the whole pipeline at x2 and x4: search (a tiny
llsr demo) -> derive -> train -> eval (PSNR/SSIM at HR, checked against scikit-image) -> enhance
(outputs scale x larger), and the one-line errors for a scale that does not fit."""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from nas_llv.cli import main
from nas_llv.config import ConfigError, from_dict
from nas_llv.data import DataConfig, PairedFolder, build_loaders, read_image
from nas_llv.evaluation.scoring import evaluate_images
from nas_llv.space.genotype import genotype_scale, load_genotype
from nas_llv.metrics import count_flops, psnr, quantize, ssim
from nas_llv.export.modelfile import load_model, save_model
from nas_llv.recipe import load_recipe
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.retrain.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = ["data.demo_count=4", "data.demo_size=32", "data.crop=8"]
SEARCH = ["search.epochs=2", "search.s2_epochs=1", "search.steps_per_epoch=1", "search.val_batches=1",
          "data.batch_size=1", *TINY_DATA]
TRAIN = ["train.steps=3", "train.val_every=3", "train.val_batches=1", "train.checkpoint_every=3",
         "data.batch_size=2", *TINY_DATA]
EVAL = ["--repeats", "1", "--warmup", "0", "--lpips-net", "none", "--device", "cpu", "-q"]


def _newest(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.fixture(scope="module", params=[2, 4], ids=["x2", "x4"])
def sr_run(request, tmp_path_factory):
    """(scale, search run, trained model file): the llsr demo searched and retrained at ``scale``."""
    scale, tmp = request.param, tmp_path_factory.mktemp(f"x{request.param}")
    assert main(["search", str(ROOT / "recipes/llsr_demo.yaml"), "--output", str(tmp / "search"),
                 *SEARCH, f"data.scale={scale}"]) == 0
    search = _newest(tmp / "search")
    assert main(["train", str(search), "--recipe", str(ROOT / "recipes/llsr_demo_train.yaml"),
                 "--output", str(tmp / "train"), *TRAIN, f"data.scale={scale}"]) == 0
    return scale, search, _newest(tmp / "train") / "model.pt"


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def _sr_pairs(low_dir: Path, high_dir: Path, scale: int, side: int = 16,
              names: tuple[tuple[str, str], ...] = (("a", "a"), ("b", "b"))) -> list[tuple[Path, Path]]:
    """(low name, high name) pairs of PNGs: ``side``² dark inputs (box-downsampled ground truth / 5)
    and ``scale*side``² ground truths. Returns their paths."""
    rng = np.random.default_rng(scale)
    for low_name, high_name in names:
        high = rng.integers(30, 250, (side * scale, side * scale, 3))
        _png(high_dir / f"{high_name}.png", high)
        _png(low_dir / f"{low_name}.png", high.reshape(side, scale, side, scale, 3).mean(axis=(1, 3)) / 5)
    return [(low_dir / f"{lo}.png", high_dir / f"{hi}.png") for lo, hi in names]


def _saved_output(model: Path, low: Path, dtype: type = np.float64) -> np.ndarray:
    """The model's output on ``low`` rounded to 8 bits in ``dtype``: (sH, sW, 3) uint8. eval
    quantises in float64, enhance's files in float32 (a level apart where 255 x is near n + 1/2)."""
    net, _ = load_model(model)
    with torch.no_grad():
        x = net(read_image(low)[None])["x"][0].permute(1, 2, 0).numpy().astype(dtype)
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _check_eval(model: Path, data: Path, out: Path, pairs: list[tuple[Path, Path]], scale: int, *extra: str) -> None:
    assert main(["eval", str(model), "--data", str(data), "-o", str(out), *EVAL, *extra]) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["name"] for r in rows] == [lo.stem for lo, _ in pairs]
    for r, (lo, hi) in zip(rows, pairs):
        x = _saved_output(model, lo) / 255.0
        gt = np.asarray(Image.open(hi), dtype=np.float64) / 255
        assert x.shape == gt.shape == (scale * read_image(lo).shape[1], scale * read_image(lo).shape[2], 3)
        # eval reads ground truths as float32 (k/255 to ~1e-8): equal up to that rounding
        assert float(r["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, x, data_range=1), abs=1e-6)
        ref_ssim = structural_similarity(gt, x, data_range=1, channel_axis=-1)
        assert float(r["ssim"]) == pytest.approx(ref_ssim, abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    side = read_image(pairs[0][0]).shape[-1]
    net, _ = load_model(model)
    assert summary["scale"] == scale and summary["resolution"] == f"{side}x{side}"  # cost at the LR input
    assert summary["flops"] == count_flops(net, torch.rand(1, 3, side, side))
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))


def test_paired_sr_folders_train_with_aligned_crops(tmp_path):
    _sr_pairs(tmp_path / "low", tmp_path / "high", 2)
    train, _ = build_loaders(from_dict(DataConfig, {"type": "paired", "root": str(tmp_path), "scale": 2, "crop": 8, "batch_size": 2}))
    batch = next(train)
    assert batch["low"].shape == (2, 3, 8, 8) and batch["high"].shape == (2, 3, 16, 16)
    # each input is its ground truth box-downsampled and darkened (/ 5), truncated to 8 bits
    assert (F.avg_pool2d(batch["high"], 2) / 5 - batch["low"]).abs().max() <= 1 / 255 + 1e-6
    with pytest.raises(ConfigError, match=r"ground truth size \(32, 32\) does not fit .* at scale x4"):
        next(build_loaders(from_dict(DataConfig, {"type": "paired", "root": str(tmp_path), "scale": 4, "batch_size": 1}))[0])


def test_derive_prints_flops_at_the_lr_input(sr_run, capsys):
    scale, search, _ = sr_run
    geno = load_genotype(search / "genotype.yaml")
    assert genotype_scale(geno) == scale
    capsys.readouterr()
    assert main(["derive", str(search), "--size", "20x12"]) == 0
    out = capsys.readouterr().out
    assert f"(super-resolution x{scale})" in out
    gflops = float(re.search(rf"FLOPs at 20x12 input \(output {20 * scale}x{12 * scale}\): ([0-9.]+) G", out)[1])
    assert gflops == pytest.approx(count_flops(geno.build(), torch.rand(1, 3, 12, 20)) / 1e9, abs=5e-4)


def test_training_validates_at_hr(sr_run):
    scale, search, model = sr_run
    _, geno = load_model(model)
    assert genotype_scale(geno) == scale
    recipe = load_recipe(ROOT / "recipes/llsr_demo_train.yaml", [*TRAIN, f"data.scale={scale}"])
    trainer = Trainer(recipe, load_genotype(search / "genotype.yaml"))
    val = trainer.validate()
    trainer.val_data.load_state_dict(trainer._val_start)
    batch = next(trainer.val_data)
    assert batch["high"].shape[-2:] == (8 * scale, 8 * scale) and batch["low"].shape[-2:] == (8, 8)
    with torch.no_grad():
        x = quantize(trainer.net.eval()(batch["low"])["x"].clamp(0, 1).double())
    assert val["metric/psnr"] == pytest.approx(float(psnr(x, batch["high"].double()).mean()), abs=1e-9)
    assert val["metric/ssim"] == pytest.approx(float(ssim(x, batch["high"].double()).mean()), abs=1e-9)


def test_eval_on_low_high_folders_matches_skimage(sr_run, tmp_path):
    scale, _, model = sr_run
    pairs = _sr_pairs(tmp_path / "pairs/low", tmp_path / "pairs/high", scale)
    _check_eval(model, tmp_path / "pairs", tmp_path / "eval", pairs, scale)


def test_eval_on_a_rellisur_layout(sr_run, tmp_path):
    scale, _, model = sr_run
    root = tmp_path / "RELLISUR"
    pairs = _sr_pairs(root / "Val/LLLR", root / f"Val/NLHR/X{scale}", scale, side=12,
                      names=(("00001-2.5", "00001"), ("00002-5", "00002")))  # RELLISUR: <id>-<ev> -> <id>
    _check_eval(model, root, tmp_path / "eval", pairs, scale, "--split", "val")


def test_enhance_writes_scale_x_larger_images(sr_run, tmp_path):
    scale, _, model = sr_run
    _png(tmp_path / "in/one.png", np.random.default_rng(0).integers(0, 60, (12, 20, 3)))
    assert main(["enhance", str(model), str(tmp_path / "in"), str(tmp_path / "out"), "--device", "cpu", "-q"]) == 0
    saved = np.asarray(Image.open(tmp_path / "out/one.png"))
    assert saved.shape == (12 * scale, 20 * scale, 3)
    np.testing.assert_array_equal(saved, _saved_output(model, tmp_path / "in/one.png", np.float32))


def test_a_ground_truth_of_the_wrong_size_is_one_line(sr_run, tmp_path, capsys):
    scale, _, model = sr_run
    _sr_pairs(tmp_path / "pairs/low", tmp_path / "pairs/high", 1)  # same size: an enhancement pair
    ruas = save_model(tmp_path / "ruas.pt", ruas_genotype("cvpr", "ruas_s"), ruas_genotype("cvpr", "ruas_s").build())
    _sr_pairs(tmp_path / "sr/low", tmp_path / "sr/high", scale)
    capsys.readouterr()
    for m, data, want, got in ((model, "pairs", scale, 16), (ruas, "sr", 1, 16 * scale)):
        assert main(["eval", str(m), "--data", str(tmp_path / data), "-o", str(tmp_path / "eval"), *EVAL]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{data}/high/a.png" in err and f"x{want}" in err
        assert f"({got}, {got})" in err and f"expected ({16 * want}, {16 * want})" in err
    assert not (tmp_path / "eval").exists()


def test_an_output_that_misses_the_ground_truth_size_is_refused(tmp_path):
    _sr_pairs(tmp_path / "low", tmp_path / "high", 2)
    pairs = PairedFolder(tmp_path, scale=2)
    with pytest.raises(ConfigError, match=r"a: output 'x' is \(64, 64\) for input \(16, 16\), but its ground truth"):
        evaluate_images(nn.Upsample(scale_factor=4), pairs, torch.device("cpu"), progress=False)


def test_train_refuses_a_data_scale_other_than_the_genotype_s(sr_run, tmp_path, capsys):
    scale, search, _ = sr_run
    other = 4 if scale == 2 else 2
    capsys.readouterr()
    assert main(["train", str(search), "--recipe", str(ROOT / "recipes/llsr_demo_train.yaml"),
                 "--output", str(tmp_path / "runs"), *TRAIN, f"data.scale={other}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"data.scale={other}, but the genotype's network super-resolves x{scale}" in err
    assert not (tmp_path / "runs").exists()
    assert yaml.safe_load((search / "genotype.yaml").read_text())["spaces"]["llsr"]["model"]["scale"] == scale


def test_train_refuses_sr_data_for_an_enhancement_genotype(tmp_path, capsys):
    genotype = ruas_genotype("cvpr", "ruas_s").save(tmp_path / "genotype.yaml")
    assert main(["train", str(genotype), "--recipe", str(ROOT / "recipes/llsr_demo_train.yaml"),
                 "--output", str(tmp_path / "runs"), *TRAIN]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.scale=2, but the genotype's network enhances" in err
    assert "set data.scale=1" in err and not (tmp_path / "runs").exists()
