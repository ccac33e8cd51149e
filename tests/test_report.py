"""``nas-llv report``: a tiny search (with the Hessian and cost columns), its retraining and an
evaluation, and a sweep folder of two trials, each written as one page; the pages' content checked
against the runs' files, then opened in headless Chromium (skipped where it is absent): no console
errors, every chart drawn, and a screenshot that shows them."""
from __future__ import annotations

import base64
import csv
import html
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from browser import find_browser, visit
from nas_llv import pipeline as p
from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.data import read_image, write_image
from nas_llv.data.demo import darken, source_image
from nas_llv.enhance import enhance_tensor
from nas_llv.export.modelfile import load_model
from nas_llv.report import charts, write_report
from nas_llv.results import load_trajectory_wide
from nas_llv.sweep import genotype_hash, plan_trials, trial_dict, write_plan, write_summary

ROOT = Path(__file__).resolve().parents[1]
TINY = ["search.epochs=2", "data.demo_count=4", "data.demo_size=32", "data.crop=16", "data.batch_size=1",
        "device=cpu"]
MEASURED = ["search.hessian={every: 1}", "search.cost={target: 1.5}"]  # Hessian and cost curves to plot
TINY_TRAIN = ["train.steps=4", "train.val_every=2", "train.checkpoint_every=2", "data.demo_count=4",
              "data.demo_size=32", "data.crop=16", "data.batch_size=2", "device=cpu"]
PLOTLY = importlib.util.find_spec("plotly") is not None
needs_plotly = pytest.mark.skipif(not PLOTLY, reason="plotly is not installed (pip install -e '.[report]')")
# the first line colour of each renderer: plotly's #636efa, matplotlib's tab:blue
FIRST_COLOUR = {"plotly": (99, 110, 250), "matplotlib": (31, 119, 180)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A search, its retraining evaluated on two real photographs (darkened), a sweep of 2 seeds."""
    out = tmp_path_factory.mktemp("report")
    searched = p.search(ROOT / "recipes/ruas_demo.yaml", TINY + MEASURED, output=out)
    trained = p.train(searched, ROOT / "recipes/ruas_demo_train.yaml", TINY_TRAIN, output=out)
    pairs = out / "pairs"
    for i, name in enumerate(("astronaut", "coffee")):
        high = F.interpolate(source_image(name)[None].float() / 255, size=(40, 48), mode="area")[0]
        write_image(pairs / "low" / f"{i}.png", darken(high, 0.2))
        write_image(pairs / "high" / f"{i}.png", high)
    p.evaluate(trained, pairs, lpips_net="none", repeats=1, warmup=0, device="cpu", progress=False)
    return {"search": searched.dir, "train": trained.dir, "pairs": pairs, "sweep": _sweep(out / "sweep")}


def _sweep(folder: Path) -> Path:
    """A sweep folder as ``nas-llv sweep`` lays it out (sweep.yaml, a search run per trial,
    summary.csv), its two trials searched here in turn rather than on Ray."""
    folder.mkdir()
    trials = plan_trials([0, 1], [])
    write_plan(folder, {"recipe": "ruas_demo", "seeds": [0, 1], "grid": {},
                        "trials": [trial_dict(t, "tiny") for t in trials]})
    rows = []
    for t in trials:
        run = p.search(ROOT / "recipes/ruas_demo.yaml", [*TINY, "search.epochs=1", *t.overrides(),
                                                         f"name={t.name('tiny')}"], output=folder)
        rows.append({"trial": t.index, "run": run.dir.name, "seed": t.seed, "status": "searched",
                     "genotype_hash": genotype_hash(yaml.safe_load((run.dir / "genotype.yaml").read_text())["genotype"])})
    write_summary(folder, [], rows)
    return folder


def _charts(page: str) -> int:
    return page.count('class="chart ')


SCALARS = ["losses", "loss terms (unweighted)", "Hessian: dominant eigenvalue of ∇²α", "expected cost",
           "α penalty: cost", "hypergradient method: eps", "hypergradient method: v_norm", "learning rate"]
# ^ the charts of this search's trajectory columns (docs/runs.md)


def test_a_search_report_plots_every_group_every_edge_and_draws_each_cell(runs, tmp_path):
    page = write_report(runs["search"], tmp_path / "r.html", plots="matplotlib").read_text()
    edges = list(dict.fromkeys(c.split("/")[1] for c in load_trajectory_wide(runs["search"]).columns
                               if c.startswith("prob/")))
    titles = [html.unescape(t) for t in re.findall(r'<img class="chart png-chart" alt="([^"]*)"', page)]
    assert titles == [*SCALARS, *edges, "edge entropy: scene", "edge entropy: denoise"]
    assert page.count('class="drawing"') == 2  # the scene and denoise cells
    genotype = yaml.safe_load((runs["search"] / "genotype.yaml").read_text())["genotype"]
    for label, op in genotype.items():
        assert f"<td>{label}</td>\n      <td>{op}</td>" in page
    assert "chose within noise" in page and "settle" in page


@needs_plotly
def test_plotly_draws_the_same_charts_with_its_script_inline(runs, tmp_path):
    page = write_report(runs["search"], tmp_path / "r.html", plots="plotly").read_text()
    edges = [c for c in load_trajectory_wide(runs["search"]).columns if c.startswith("prob/") and c.endswith("/skip")]
    assert page.count('class="chart plotly-chart"') == len(SCALARS) + len(edges) + 2
    assert page.count("<script") == 1 + page.count('class="chart plotly-chart"')  # plotly.js once, then each chart
    assert "src=" not in "".join(re.findall(r"<script[^>]*>", page))  # nothing loaded from the network


def test_a_training_report_shows_its_evaluation_and_the_model_s_own_outputs(runs, tmp_path):
    page = write_report(runs["train"], tmp_path / "r.html", samples=2, plots="matplotlib").read_text()
    assert "evaluation: eval-pairs" in page and page.count("<figure>") == 6  # input, output, truth x 2
    shown = [_image(src) for src in re.findall(r'<figure><img[^>]* src="data:image/jpeg;base64,([^"]+)"', page)]
    net = load_model(runs["train"] / "model.pt")[0].eval()
    expected = enhance_tensor(net, read_image(runs["pairs"] / "low" / "0.png")[None])[0].clamp(0, 1)
    assert shown[1].shape == expected.shape and (shown[1] - expected).abs().mean() < 0.03  # JPEG's loss only
    assert (shown[2] - read_image(runs["pairs"] / "high" / "0.png")).abs().mean() < 0.03


def test_an_evaluation_without_ground_truth_shows_input_and_output(runs, tmp_path):
    photos = tmp_path / "photos"  # the user's own dark photographs: images directly in a folder, as large as NIQE needs
    for name in ("astronaut", "coffee"):
        high = F.interpolate(source_image(name)[None].float() / 255, size=(192, 208), mode="area")[0]
        write_image(photos / f"{name}.png", darken(high, 0.2))
    summary = p.evaluate(runs["train"], photos, repeats=1, warmup=0, device="cpu", progress=False,
                         out_dir=tmp_path / "eval-photos")
    page = write_report(summary.out_dir, tmp_path / "r.html", samples=2).read_text()
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    assert len(captions) == 4 and [c.split(":")[1].split(",")[0].strip() for c in captions] == ["input", "output"] * 2
    assert "brightness" in captions[1] and "ground truth" not in page


def test_an_evaluation_folder_alone_is_a_page_of_its_own(runs, tmp_path):
    page = write_report(runs["train"] / "eval-pairs", tmp_path / "r.html", samples=1).read_text()
    assert "<title>evaluation eval-pairs</title>" in page and page.count("<figure>") == 3


def _image(b64: str) -> torch.Tensor:
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)


def test_a_sweep_report_lists_each_trial_s_genotype_and_overlays_their_trajectories(runs, tmp_path):
    page = write_report(runs["sweep"], tmp_path / "r.html", plots="matplotlib").read_text()
    with (runs["sweep"] / "summary.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert len(trials) == 2
    for row in trials:  # the trial's row in the genotype table: trial, seed, run, finished, val_loss, hash
        assert re.search(rf"<td>{row['trial']}</td>\s*<td>{row['seed']}</td>\s*<td>{row['run']}</td>\s*"
                         rf"<td>True</td>\s*<td>[0-9.]+</td>\s*<td>{row['genotype_hash']}</td>", page)
    assert [html.unescape(t) for t in re.findall(r'<img class="chart png-chart" alt="([^"]*)"', page)] == \
        ["validation loss", "training loss"]


@pytest.mark.parametrize("folder", ["nothing", "empty"])
def test_a_folder_that_is_no_run_is_one_line(tmp_path, capsys, folder):
    if folder == "empty":
        (tmp_path / folder).mkdir()
    assert main(["report", str(tmp_path / folder), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run" in err and not (tmp_path / "r.html").exists()


def test_a_run_that_has_not_taken_a_step_is_a_page_saying_so(tmp_path):
    run = tmp_path / "tiny-20260101-000000"
    run.mkdir()
    (run / "config.yaml").write_text("name: tiny\nseed: 3\n")
    (run / "trajectory.csv").write_text("")  # created, no row yet
    page = write_report(run, plots="matplotlib").read_text()  # written into the run: report.html
    assert "<td>not started</td>" in page and "<td>3</td>" in page and 'class="chart' not in page


def test_without_plotly_the_charts_are_matplotlib_pngs(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "plotly" else real(name, *a))
    assert charts.pick_backend("auto") == "matplotlib"
    with pytest.raises(ConfigError, match=r"plotly is not installed; pip install -e '\.\[report\]'"):
        charts.pick_backend("plotly")


# -- in a real browser ---------------------------------------------------------------------------

BROWSER = find_browser()
needs_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium here (.ci/run installs Debian's chromium)")
DOM = {
    "charts": "document.querySelectorAll('.chart').length",
    "drawn": "document.querySelectorAll('.plotly-chart .js-plotly-plot .main-svg .scatterlayer path.js-line').length"
             " + document.querySelectorAll('img.png-chart').length",
    "images_ok": "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
    "images": "document.images.length",
}


def _coloured(png: bytes, rgb: tuple[int, int, int], tolerance: int = 30) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.array(rgb)).max(axis=-1) <= tolerance).sum())


@needs_browser
@pytest.mark.parametrize("kind, plots", [*(pytest.param(kind, "plotly", marks=needs_plotly)
                                          for kind in ("search", "train", "sweep")), ("train", "matplotlib")])
def test_the_page_renders_in_chromium_without_errors_and_shows_its_plots(runs, tmp_path, kind, plots):
    page = write_report(runs[kind], tmp_path / "report.html", samples=1, plots=plots)
    seen, text = visit(page, DOM, browser=BROWSER), page.read_text()
    assert seen.errors == []
    assert seen.values["charts"] == _charts(text) > 0
    assert seen.values["drawn"] >= seen.values["charts"]  # every plotly chart drew its lines
    assert seen.values["images_ok"] and seen.values["images"] == text.count("<img")  # every image decoded
    shot = np.asarray(Image.open(io.BytesIO(seen.screenshot)).convert("RGB"))
    assert shot.shape == (2000, 1200, 3) and shot.std() > 10  # not a blank page
    assert _coloured(seen.screenshot, FIRST_COLOUR[plots]) > 100  # the plots' lines are on screen
    (tmp_path / "screenshot.png").write_bytes(seen.screenshot)
