"""The new TriCo and CollaBA parts through the whole pipeline: the shipped recipes search them (their
labels reach genotype.yaml), and a genotype choosing each new part trains (tiny) and evaluates
through the same CLI code as any other genotype."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas_llv.cli import main
from nas_llv.space.genotype import Genotype, load_genotype
from nas_llv.space.models import build_supernet
from nas_llv.space.spec import load_space
from nas_llv.space.supernet import genotype_of

ROOT = Path(__file__).resolve().parents[2]
TINY = ["data.demo_count=4", "data.demo_size=32", "data.crop=8"]
SEARCH = ["search.epochs=2", "search.s2_epochs=1", "search.steps_per_epoch=1", "search.val_batches=1",
          "data.batch_size=1", *TINY]
TRAIN = ["train.steps=2", "train.val_every=2", "train.val_batches=1", "train.checkpoint_every=2",
         "data.batch_size=2", *TINY]


def _newest(folder: Path) -> Path:
    return max(folder.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.mark.parametrize("recipe, extra, labels", [
    ("llsr_demo.yaml", [], {"upscaler": "dynamic_grid", "ihem": "ihem"}),
    ("collaba_rellisur_x4.yaml", ["data.type=demo_sr", "data.root=null", "data.split=null", "data.num_workers=0",
                                  "losses.lower.terms.perceptual.on_missing=drop"],
     {"stem": "unshuffle", "reconstruction": "crb"}),
], ids=["trico", "collaba"])
def test_the_recipes_search_the_new_parts(tmp_path, recipe, extra, labels):
    assert main(["search", str(ROOT / "recipes" / recipe), "--output", str(tmp_path), *SEARCH, *extra]) == 0
    geno = load_genotype(_newest(tmp_path) / "genotype.yaml")
    space = next(iter(geno.spaces.values()))
    for label, name in labels.items():
        assert name in space.parts()[label] and label in geno.choices


def _pairs(root: Path, scale: int, side: int = 12) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        high = rng.integers(30, 250, (side * scale, side * scale, 3))
        low = high.reshape(side, scale, side, scale, 3).mean(axis=(1, 3)) / 5
        for folder, img in (("high", high), ("low", low)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.astype(np.uint8)).save(root / folder / f"{name}.png")


@pytest.mark.parametrize("space_name, parts", [
    ("trico_llsr", {"upscaler": "dynamic_grid", "ihem": "ihem"}),
    ("collaba_llsr", {"stem": "unshuffle", "reconstruction": "crb"}),
], ids=["trico", "collaba"])
def test_a_genotype_with_the_new_parts_trains_and_evaluates(tmp_path, space_name, parts):
    space = load_space(space_name)
    model = {**space.model, "scale": 2, **({"semantic": "local"} if space_name == "trico_llsr" else {})}
    space = dataclasses.replace(space, model=model)
    choices = {**genotype_of(build_supernet(space)), **parts}
    path = Genotype({"type": "single"}, {"llsr": space}, choices).save(tmp_path / "genotype.yaml")
    assert main(["train", str(path), "--recipe", str(ROOT / "recipes/llsr_demo_train.yaml"),
                 "--output", str(tmp_path / "train"), *TRAIN]) == 0
    model_file = _newest(tmp_path / "train") / "model.pt"
    _pairs(tmp_path / "data", 2)
    assert main(["eval", str(model_file), "--data", str(tmp_path / "data"), "-o", str(tmp_path / "eval"),
                 "--repeats", "1", "--warmup", "0", "--lpips-net", "none", "--device", "cpu", "-q"]) == 0
    rows = list(csv.DictReader((tmp_path / "eval" / "metrics.csv").open()))
    assert [r["name"] for r in rows] == ["a", "b"] and all(np.isfinite(float(r["psnr"])) for r in rows)
