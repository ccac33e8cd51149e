"""RUAS's training without ground truth (recipes/ruas_unsupervised_train.yaml) on small dark images:
the output keeps the input's colour balance and structure and does not drift towards white over
the steps, where the paper's scene loss alone collapses (docs/training.md, "Training without
ground truth"). Behaviour, not a score: no test here reads a PSNR."""
from __future__ import annotations

import pytest
import torch
import yaml

from conftest import RECIPES
from nas_llv.data.synth import build_synth
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.recipe import recipe_from_dict
from nas_llv.retrain.trainer import Trainer, TrainingObjective
from nas_llv.runs import Run

# night-dark images made from the bundled photographs, no ground truth (DARK FACE's inputs average
# about 0.05; these 0.03 to 0.1 of full exposure average about as much)
DARK = {"type": "synth", "paired": False, "synth_count": 8, "synth_size": 48, "exposure_min": 0.03,
        "exposure_max": 0.1, "crop": 32, "batch_size": 4, "val_ratio": 0.25}
PAPER_SCENE_LOSS = {"scene": {"type": "ruas_scene"}}


def _train(tmp_path, steps: int, losses=None, lr: float = 1e-3) -> torch.nn.Module:
    data = yaml.safe_load((RECIPES / "ruas_unsupervised_train.yaml").read_text())
    data["data"] = dict(DARK)
    if losses is not None:
        data["losses"] = losses
    # a constant lr, so the first steps of a longer run are the shorter run's
    data["train"].update(steps=steps, val_every=steps, checkpoint_every=steps)
    data["train"]["optim"].update(lr=lr, schedule="constant")
    recipe = recipe_from_dict(data, "ruas_unsupervised_train.yaml")
    trainer = Trainer(recipe, ruas_genotype("cvpr", "ruas_s"))
    trainer.attach(Run.create(recipe.to_dict(), recipe.name, tmp_path / f"{steps}-{lr}"))
    trainer.run()
    return trainer.net.eval()


@pytest.fixture(scope="module")
def held_out() -> torch.Tensor:
    """Six dark images the training never sees (another seed): (6, 3, 64, 64)."""
    items = build_synth(seed=7, paired=False, synth_count=6, synth_size=64, exposure_min=0.03, exposure_max=0.1)
    return torch.stack([items[i]["low"] for i in range(len(items))])


# The scene network is local: the colour term teaches it one gain per channel that balances the
# training photos on average, so a cast is judged over the held-out set, not image by image.
def _cast(x: torch.Tensor) -> torch.Tensor:
    """How far each image's channel means are from gray: max_c |m_c / sum(m) - 1/3|, (N,)."""
    m = x.mean(dim=(2, 3))
    return (m / m.sum(dim=1, keepdim=True) - 1 / 3).abs().amax(dim=1)


def _report(net: torch.nn.Module, y: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        x = net(y)["x"]
    lum_x, lum_y = x.mean(1).flatten(1), y.mean(1).flatten(1)
    corr = torch.stack([torch.corrcoef(torch.stack([a, b]))[0, 1] for a, b in zip(lum_x, lum_y)])
    return {"mean": float(x.mean()), "clipped": float((x > 0.99).float().mean()),
            "cast_added": float(_cast(x).mean() - _cast(y).mean()), "structure": float(corr.min())}


def _usable(r: dict[str, float], dark_mean: float) -> bool:
    return (r["mean"] > 1.5 * dark_mean and r["mean"] < 0.5 and r["clipped"] < 0.02
            and r["cast_added"] < 0.01 and r["structure"] > 0.95)


def test_the_recipe_brightens_keeps_colour_and_structure_and_settles(tmp_path, held_out):
    early, late = (_report(_train(tmp_path, n), held_out) for n in (150, 300))
    dark = float(held_out.mean())
    assert _usable(early, dark), early
    assert _usable(late, dark), late
    assert abs(late["mean"] - early["mean"]) < 0.03, (early, late)  # no drift towards white


def test_the_papers_scene_loss_alone_collapses_where_the_recipe_does_not(tmp_path, held_out):
    # the checks above have teeth: RTV with Adam drives t into the sigmoid's floor, so
    # u = clamp(y / t) saturates channel by channel (the magenta of issue 25)
    r = _report(_train(tmp_path, 150, PAPER_SCENE_LOSS, lr=3e-3), held_out)
    assert not _usable(r, float(held_out.mean())), r
    assert r["clipped"] > 0.5 and r["structure"] < 0.9, r


def test_a_scene_loss_with_nothing_holding_the_exposure_is_warned_about():
    from nas_llv.retrain.plausibility import drift_warnings
    plain = {"scene": {"type": "ruas_scene"}, "task": {"type": "ruas_denoise"}, "l1": {"type": "l1"}}
    (warning,) = drift_warnings(plain, {"scene": 1.0, "task": 1.0})
    assert "'scene'" in warning and "ruas_unsupervised_train.yaml" in warning
    assert drift_warnings(plain, {"l1": 1.0, "task": 1.0}) == []
    shipped = yaml.safe_load((RECIPES / "ruas_unsupervised_train.yaml").read_text())
    assert drift_warnings(shipped["losses"], shipped["train"]["objective"]) == []


def test_the_recipes_objective_never_reads_the_ground_truth():
    # training on synthesised lows (docs/training.md) is unsupervised only if no term reads 'high':
    # a poisoned ground truth changes nothing, and a batch without one is accepted
    shipped = yaml.safe_load((RECIPES / "ruas_unsupervised_train.yaml").read_text())
    net = ruas_genotype("cvpr", "ruas_s").build()
    objective = TrainingObjective(shipped["losses"], shipped["train"]["objective"], net)
    pairs = build_synth(seed=3, synth_count=2, synth_size=32, exposure_min=0.03, exposure_max=0.1)
    low = torch.stack([pairs[i]["low"] for i in range(2)])
    with torch.no_grad():
        alone, _, _ = objective(net, {"low": low})
        poisoned, _, _ = objective(net, {"low": low, "high": torch.full_like(low, float("nan"))})
    assert torch.isfinite(alone) and float(alone) > 0
    assert torch.equal(alone, poisoned)
