"""Strategy 'hyper' (TriCo Alg. 1): ς moves toward the useful loss, S2 updates only ω_i at the
upper level, the recipes run through the CLI, and the derived x2 / x4 models super-resolve."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from nas_llv.cli import main
from nas_llv.config import ConfigError
from nas_llv.space.genotype import load_genotype
from nas_llv.losses import CompositeLoss
from nas_llv.recipe import OptimConfig, load_recipe, recipe_from_dict
from nas_llv.registry import HYPERGRADS
from nas_llv.runs import Run
from nas_llv.search.loop import Searcher
from nas_llv.search.strategies.hyper import NetWithLosses, hyper_level, hyper_optimizer
from nas_llv.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "llsr_demo.yaml"
SMALL = ["search.epochs=2", "search.s2_epochs=1", "search.steps_per_epoch=2", "search.val_batches=1",
         "data.demo_count=6", "data.demo_size=32", "data.crop=8", "data.batch_size=1"]


# -- (a) a synthetic problem: one loss term is noise, the other drives the validation loss ----------

class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": self.lin(x)}


class MSETo(nn.Module):
    """mean (x - batch[key])², a loss term in the (out, batch) convention."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def forward(self, out, batch):
        return (out["x"] - batch[self.key]).square().mean()


def _synthetic(method: dict, form: str = "trico", steps: int = 150) -> tuple[dict, dict]:
    """y = A x; term 'useful' fits y, term 'noise' fits fresh N(0, 4) targets; Φ^ul = MSE to y.
    Returns the learned hyper-variables (ς) and their coefficients in the total (1/(2ς) for trico)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g)

    def batches():
        while True:
            x = torch.randn(16, 6, generator=g)
            yield {"low": x, "high": x @ a, "noise": 2 * torch.randn(16, 6, generator=g)}

    lower = CompositeLoss({"useful": MSETo("high"), "noise": MSETo("noise")}, learned={"form": form})
    objective = NetWithLosses(Tiny(), lower, CompositeLoss({"fit": MSETo("high")}))
    level = hyper_level(objective)
    weights_opt = make_optimizer(OptimConfig(optimizer="sgd", lr=0.02, momentum=0.0), list(level.lower.values()))
    level.attach(weights_opt, hyper_optimizer(level, OptimConfig(lr=0.03, schedule="constant"), None), None)
    method = HYPERGRADS.build(method)
    train, val = batches(), batches()
    for _ in range(steps):
        level.iterate(method, lambda: next(train), lambda: next(val))  # the strategy's own step
    return lower.learned.values(), lower.learned.coefficients()


@pytest.mark.parametrize("method", [{"type": "finite_difference"}, {"type": "implicit_cg", "damping": 0.1, "cg_iters": 10}])
def test_sigma_moves_weight_to_the_useful_term(method):
    # trico form: coefficient 1/(2ς), so the useful term's ς must shrink relative to the noise's
    sigma, coef = _synthetic(method)
    assert sigma["useful"] < 1.0 < sigma["noise"]           # both start at 1
    assert coef["useful"] / coef["noise"] > 4.0


def test_outer_product_moves_sigma_by_loss_values_with_a_fixed_upper_loss():
    # why the strategy warns about implicit_gn with losses.upper (docs/hyper.md): its response
    # points along ∇_ς Φ^ll, the vector of the losses, so the larger noise loss gains weight here
    sigma, coef = _synthetic({"type": "implicit_gn"})
    assert coef["useful"] / coef["noise"] < 1.0


def test_first_order_with_a_fixed_upper_loss_is_refused():
    with pytest.raises(ConfigError, match="first_order gives ς no gradient"):
        Searcher(load_recipe(DEMO, SMALL + ["search.hypergrad={type: first_order}"]))


# -- (c) S2: the upper level is ω_i only; ς and α stay frozen ------------------------------------

def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def _changed(before: dict[str, torch.Tensor], module: nn.Module) -> set[str]:
    return {n for n, p in module.named_parameters() if not torch.equal(before[n], p)}


def test_s2_updates_only_the_illumination_regulator_at_the_upper_level(tmp_path):
    recipe = load_recipe(DEMO, SMALL)
    searcher = Searcher(recipe)
    searcher.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path))
    level, obj = searcher.levels["illum"], searcher.strategy.objective
    regulator = {f"net.regulator.{n}" for n, _ in obj.net.regulator.named_parameters()}
    assert set(level.upper) == regulator and not set(level.lower) & regulator
    assert "lower.learned.raw" not in {**level.upper, **level.lower}
    train = iter(lambda: searcher._batch(searcher.train_data), None)
    before = _snapshot(obj)
    level.arch_step(searcher.method, next(train), searcher._batch(searcher.val_data))
    assert _changed(before, obj) == regulator
    before = _snapshot(obj)
    level.weight_step(next(train))
    changed = _changed(before, obj)
    assert changed and not changed & regulator
    assert not any(n.startswith("lower.") or ".arch." in n for n in changed)


# -- (b) the demo recipe through the CLI; derived models are scale x the input ---------------------

def _cli_run(tmp_path: Path, recipe: Path, *overrides: str) -> Path:
    out = tmp_path / "runs"
    assert main(["search", str(recipe), "--output", str(out), *overrides]) == 0
    return max(out.iterdir(), key=lambda p: p.stat().st_mtime)


def test_demo_recipe_through_the_cli_learns_sigma_then_derives_x2(tmp_path):
    run = _cli_run(tmp_path, DEMO, *SMALL)
    frame = pd.read_csv(run / "trajectory.csv")
    hyper = [c for c in frame.columns if c.startswith("hyper/")]
    assert {"hyper/l1", "hyper/ssim", "hyper/tv", "hyper/luminance"} <= set(hyper)
    assert list(frame["module"]) == ["hyper", "hyper", "illum", "illum"]
    s1, s2 = frame[frame["module"] == "hyper"], frame[frame["module"] == "illum"]
    assert (s1[hyper].iloc[-1] != 1.0).all()                       # ς left the unit vector in S1
    assert (s2[hyper] == s1[hyper].iloc[-1]).all().all()           # and stays frozen in S2
    learned = yaml.safe_load((run / "hyper.yaml").read_text())
    assert learned["form"] == "trico"
    assert learned["values"] == pytest.approx({c[6:]: v for c, v in s2[hyper].iloc[-1].items()})
    assert any(c.startswith("prob/upscaler/") for c in frame.columns)
    _check_derived(run, 2)


def test_collaba_recipe_at_x4_derives_a_4x_model(tmp_path):
    run = _cli_run(tmp_path, ROOT / "recipes" / "collaba_rellisur_x4.yaml", *SMALL,
                   "data.type=demo_sr", "data.root=null", "data.split=null", "data.num_workers=0",
                   "search.s2_epochs=0", "losses.lower.terms.perceptual.on_missing=drop")
    frame = pd.read_csv(run / "trajectory.csv")
    assert {"hyper/l1", "hyper/illum_prior", "hypergrad/coef"} <= set(frame.columns)
    _check_derived(run, 4)


def _check_derived(run: Path, scale: int) -> None:
    geno = load_genotype(run / "genotype.yaml")
    assert next(iter(geno.spaces.values())).model["scale"] == scale
    net = geno.build()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 12, 20))["x"]
    assert out.shape == (1, 3, 12 * scale, 20 * scale)
    assert main(["derive", str(run), "--size", "20x12"]) == 0


def test_resume_equals_uninterrupted(tmp_path):
    recipe = load_recipe(DEMO, SMALL)

    def searcher(sub):
        s = Searcher(recipe_from_dict(recipe.to_dict(), "r.yaml"))
        s.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path / sub))
        return s

    a = searcher("a")
    assert a.run()
    b = searcher("b")
    assert b.run(stop_after=1) is False
    b.attached_run.close()
    run = Run.open(b.attached_run.dir)
    c = Searcher(recipe_from_dict(run.config(), "config.yaml"))
    c.attach(run)
    c.load_state_dict(run.load_checkpoint())
    assert c.run()
    frames = [pd.read_csv(r / "trajectory.csv").drop(columns=["seconds"]) for r in (a.attached_run.dir, run.dir)]
    pd.testing.assert_frame_equal(*frames)
    assert (a.attached_run.dir / "hyper.yaml").read_text() == (run.dir / "hyper.yaml").read_text()


def _rellisur(root: Path, scale: int, n: int = 6, size: int = 12) -> Path:
    """A tiny RELLISUR layout: Train/LLLR/<id>-<ev>.png and Train/NLHR/X<scale>/<id>.png."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    (root / "Train" / "LLLR").mkdir(parents=True)
    (root / "Train" / "NLHR" / f"X{scale}").mkdir(parents=True)
    for i in range(n):
        hr = (torch.rand(size * scale, size * scale, 3, generator=g) * 255).byte().numpy()
        Image.fromarray(hr).save(root / "Train" / "NLHR" / f"X{scale}" / f"{i:05d}.png")
        Image.fromarray(hr[::scale, ::scale] // 8).save(root / "Train" / "LLLR" / f"{i:05d}-2.5.png")
    return root


def test_trico_recipe_on_a_rellisur_layout(tmp_path, capsys):
    from nas_llv.losses import vgg19_weights_path

    root = _rellisur(tmp_path / "RELLISUR", 2)
    args = [f"data.root={root}", "data.num_workers=0", "data.batch_size=1", "data.crop=8",
            "search.epochs=2", "search.s2_epochs=1", "search.steps_per_epoch=1", "search.val_batches=1"]
    recipe = ROOT / "recipes" / "trico_rellisur_x2.yaml"
    if not vgg19_weights_path().is_file():  # the real recipe needs VGG19: one clear line, no run folder
        assert main(["search", str(recipe), "--output", str(tmp_path / "none"), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "VGG19" in err and not (tmp_path / "none").exists()
    run = _cli_run(tmp_path, recipe, *args, "losses.lower.terms.perceptual.on_missing=drop")
    frame = pd.read_csv(run / "trajectory.csv")
    assert list(frame["module"]) == ["hyper", "illum"] and "hyper/luminance" in frame.columns
    _check_derived(run, 2)


def test_data_scale_sets_the_model_scale_or_is_refused():
    from nas_llv.space.spec import load_space
    from nas_llv.space.models.base import fit_scale

    assert fit_scale({"m": load_space("collaba_llsr")}, 4)["m"].model["scale"] == 4
    assert fit_scale({"s": load_space("ruas_scene")}, 1)["s"] == load_space("ruas_scene")
    with pytest.raises(ConfigError, match="does not super-resolve"):
        fit_scale({"s": load_space("ruas_scene")}, 2)
