from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

from nas_llv.cli import main
from nas_llv.evaluation.compare import load_summaries, markdown_table
from nas_llv.data import PairedFolder, read_image
from nas_llv.config import ConfigError
from nas_llv.evaluation.scoring import evaluate_images, image_metrics, mean_row
from nas_llv.enhance import plan_outputs
from nas_llv.metrics import LPIPSMetric, psnr, quantize, rmse, ssim
from nas_llv.export.modelfile import load_weights, save_model
from nas_llv.export.ruas_import import import_ruas, ruas_genotype


class Scale(nn.Module):
    """x = s * y: a model whose output is known exactly."""

    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.s * y


def _save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


@pytest.fixture
def tiny_pairs(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        high = rng.integers(40, 250, (48, 64, 3))  # AlexNet needs >= ~32 px
        _save_png(tmp_path / "pairs/high" / f"{name}.png", high)
        _save_png(tmp_path / "pairs/low" / f"{name}.png", high // 4)
    return PairedFolder(tmp_path / "pairs")


def test_eval_psnr_ssim_agree_with_skimage_on_mit5(shared_data, tmp_path):
    net, genotype, extra = import_ruas(shared_data / "ruas_cvpr_weights/upe.pt", variant="ruas_s")
    model = save_model(tmp_path / "upe" / "model.pt", genotype, net, extra=extra)
    assert main(["eval", str(model), "--data", str(shared_data / "mit5"), "--repeats", "1", "--warmup", "0",
                 "--lpips-net", "none", "--device", "cpu", "-q"]) == 0
    out = tmp_path / "upe" / "eval-mit5"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["name"] for r in rows] == ["0137", "0188", "0209", "0460", "0509"]
    for r in rows:
        y = read_image(shared_data / "mit5/low" / f"{r['name']}.png")[None]
        with torch.no_grad():
            x = net(y)["x"][0].permute(1, 2, 0).numpy()
        saved = np.round(np.clip(x, 0, 1) * 255).astype(np.uint8) / 255.0  # as a saved PNG reads back
        gt = np.asarray(Image.open(shared_data / "mit5/high" / f"{r['name']}.png"), dtype=np.float64) / 255
        assert float(r["psnr"]) == pytest.approx(peak_signal_noise_ratio(gt, saved, data_range=1), abs=0.01)
        ref_ssim = structural_similarity(gt, saved, data_range=1, channel_axis=-1)
        assert float(r["ssim"]) == pytest.approx(ref_ssim, abs=1e-3)
        assert r["lpips"] == ""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows]))
    assert summary["lpips"] is None and summary["params"] == 1161 and summary["resolution"] == "500x333"
    assert summary["quantize"] == "round" and summary["gt_mean"] is False and summary["device"] == "cpu"


def test_gt_mean_flag_factors_out_global_brightness(tiny_pairs):
    pairs = PairedFolder(tiny_pairs.root, low="high", high="high")  # input = ground truth
    plain = mean_row(evaluate_images(Scale(0.5), pairs, torch.device("cpu"), progress=False))
    corrected = mean_row(evaluate_images(Scale(0.5), pairs, torch.device("cpu"), gt_mean=True, progress=False))
    assert plain["psnr"] < 15 < 40 < corrected["psnr"]
    assert corrected["ssim"] > 0.99 and corrected["rmse"] < 2 / 255


def test_lpips_column_with_random_backbone(tiny_pairs):
    lpips = LPIPSMetric(random_backbone=True)
    rows = evaluate_images(Scale(4.0), tiny_pairs, torch.device("cpu"), lpips=lpips, progress=False)
    item = tiny_pairs[0]
    expected = lpips(quantize((4 * item["low"][None]).clamp(0, 1)), item["high"][None])
    assert rows[0]["lpips"] == pytest.approx(float(expected[0]), abs=1e-6)
    assert mean_row(rows)["lpips"] == pytest.approx((rows[0]["lpips"] + rows[1]["lpips"]) / 2)


def test_enhance_reports_a_corrupt_file_and_writes_the_others(tmp_path, capsys):
    genotype = ruas_genotype("cvpr", "ruas_s")
    model = save_model(tmp_path / "model.pt", genotype, genotype.build())
    src = tmp_path / "in"
    rng = np.random.default_rng(1)
    _save_png(src / "one.png", rng.integers(0, 80, (16, 20, 3)))
    Image.fromarray(rng.integers(0, 80, (18, 14, 3)).astype(np.uint8)).save(src / "two.jpg", quality=90)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    code = main(["enhance", str(model), str(src), str(tmp_path / "out"), "-q"])
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.png", "two.png"]
    assert Image.open(tmp_path / "out/two.png").size == (14, 18)
    assert "broken.png" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["eval", "enhance"])
def test_model_file_whose_weights_do_not_fit_is_one_line(tiny_pairs, tmp_path, capsys, command):
    genotype = ruas_genotype("cvpr", "ruas")
    # weights of an 8-channel denoiser, but no build recorded: the genotype builds a 6-channel one
    model = save_model(tmp_path / "model.pt", genotype, genotype.build(channels={"denoise": 8}))
    args = {"eval": ["eval", str(model), "--data", str(tiny_pairs.root), "--lpips-net", "none", "--device", "cpu"],
            "enhance": ["enhance", str(model), str(tiny_pairs.root / "low"), str(tmp_path / "out"), "--device", "cpu"]}
    assert main([*args[command], "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "do not fit the network its genotype builds" in err and "denoise.stem.weight (8, 3, 3, 3) vs (6, 3, 3, 3)" in err


def test_load_weights_checks_keys_and_shapes_before_loading():
    net, donor = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1)
    before = net.weight.detach().clone()
    state = donor.state_dict()
    bad = {"weight": torch.zeros(4, 3, 3, 3), "extra": torch.zeros(1)}
    with pytest.raises(ConfigError, match=r"^here: the weights do not fit the net: missing \[bias\]; unexpected "
                                          r"\[extra\]; wrong shape \(file vs network\) \[weight \(4, 3, 3, 3\) vs "
                                          r"\(4, 3, 1, 1\)\]; a hint$"):
        load_weights(net, bad, "here", "the net", "a hint")
    assert torch.equal(net.weight, before)  # nothing loaded
    load_weights(net, state, "here")
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), state.values()))


def test_image_metrics_of_a_batch_are_the_per_image_metrics():
    g = torch.Generator().manual_seed(0)
    x, gt = torch.rand(3, 3, 16, 16, generator=g) * 1.2 - 0.1, torch.rand(3, 3, 16, 16, generator=g)
    batch = image_metrics(x, gt, "truncate")
    for i in range(3):
        q = quantize(x[i:i + 1].double().clamp(0, 1), "truncate")
        one = image_metrics(x[i:i + 1], gt[i:i + 1], "truncate")
        for key, fn in (("psnr", psnr), ("ssim", ssim), ("rmse", rmse)):
            ref = float(fn(q, gt[i:i + 1].double())[0])
            assert float(batch[key][i]) == pytest.approx(ref, abs=1e-12) and float(one[key][0]) == ref
    assert batch["lpips"] is None


def test_lossy_inputs_become_png_without_clobbering(tmp_path):
    files = [tmp_path / n for n in ("a.jpg", "a.png", "b.webp", "c.tif")]
    assert [d.name for _, d in plan_outputs(files, tmp_path / "o")] == ["a.jpg.png", "a.png", "b.png", "c.tif"]


def _summary(folder, **values):
    folder.mkdir(parents=True)
    base = {"data_name": "mit5", "quantize": "round", "gt_mean": False, "output": "x", "data_range": 1.0,
            "lpips": None, "rmse": 0.1, "params": 1161, "flops": 368631000, "resolution": "500x333",
            "latency_s": 0.0153, "device": "cpu", "device_name": "x86_64"}
    (folder / "summary.json").write_text(json.dumps({**base, **values}))


def test_compare_writes_one_markdown_row_per_evaluation(tmp_path):
    _summary(tmp_path / "runA" / "eval-mit5", psnr=19.8491, ssim=0.90686)
    _summary(tmp_path / "evalB", psnr=8.1886, ssim=0.5629, params=3438, gt_mean=True)
    table = tmp_path / "table.md"
    assert main(["compare", str(tmp_path / "runA"), str(tmp_path / "evalB" / "summary.json"), "-o", str(table)]) == 0
    lines = table.read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("| model | data | PSNR (dB) | SSIM | LPIPS |")
    assert lines[2] == ("| runA/eval-mit5 | mit5 | 19.849 | 0.9069 |  | 0.1000 | 1,161 | 0.369 @ 500x333 | 15.3 "
                        "| cpu (x86_64) |")
    assert lines[3].startswith("| evalB | mit5 (GT-mean) | 8.189 | 0.5629 |  | 0.1000 | 3,438 |")
    assert markdown_table(load_summaries([tmp_path / "runA"])).count("\n") == 3


def test_no_progress_bar_into_a_pipe(tmp_path):
    """A bar is drawn on a terminal only; into a pipe or a log, enhance prints its lines alone."""
    import subprocess
    import sys

    from nas_llv.export.modelfile import save_model
    from nas_llv.export.ruas_import import ruas_genotype

    geno = ruas_genotype("cvpr", "ruas_s")
    model = save_model(tmp_path / "m.pt", geno, geno.build())
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((16, 16, 3), 30, np.uint8)).save(tmp_path / "in" / "a.png")
    done = subprocess.run([sys.executable, "-m", "nas_llv", "enhance", str(model), str(tmp_path / "in"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "img/s" not in done.stderr and "it/s" not in done.stderr and "%|" not in done.stderr


def test_eval_fast_engine_scores_the_folded_network_like_the_model(tiny_pairs, tmp_path, capsys, monkeypatch):
    """``eval --engine fast`` scores and times the folded network: the same metrics as the model (outputs
    agree to float rounding), the model's params and FLOPs, the engine named in summary.json and the output."""
    import nas_llv.inference.engines.fast as fast_engine

    calls = []
    real_fold = fast_engine.fold

    def spy(net, **kw):
        folded = real_fold(net, **kw)
        folded.register_forward_hook(lambda *_: calls.append(1))
        return folded
    monkeypatch.setattr(fast_engine, "fold", spy)
    torch.manual_seed(0)
    net = ruas_genotype("cvpr").build().eval()
    model = save_model(tmp_path / "m" / "model.pt", ruas_genotype("cvpr"), net)
    summaries = {}
    for engine in ("torch", "fast"):
        out = tmp_path / f"eval-{engine}"
        assert main(["eval", str(model), "--data", str(tiny_pairs.root), "--repeats", "1", "--warmup", "0",
                     "--lpips-net", "none", "--device", "cpu", "--engine", engine, "-o", str(out), "-q"]) == 0
        summaries[engine] = json.loads((out / "summary.json").read_text())
    plain, fast = summaries["torch"], summaries["fast"]
    assert (plain["engine"], fast["engine"]) == ("torch", "fast")
    assert fast["psnr"] == pytest.approx(plain["psnr"], abs=1e-6) and fast["ssim"] == pytest.approx(plain["ssim"], abs=1e-6)
    assert (fast["params"], fast["flops"]) == (plain["params"], plain["flops"])
    assert "engine fast" in capsys.readouterr().out
    assert len(calls) == 2 + 1  # the two images, then the one timed run
