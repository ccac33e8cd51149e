"""``nas-llv derive --sample N TARGET``: seeded random genotypes that derive and train take."""
from __future__ import annotations

import collections

import yaml

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.space.genotype import load_genotype
from nas_llv.space.spec import load_space

TINY_TRAIN = ["train.steps=2", "train.val_every=1", "train.val_batches=1", "data.demo_count=4",
              "data.demo_size=32", "data.crop=16", "data.batch_size=1"]


def _choices(folder):
    return [load_genotype(p).choices for p in sorted(folder.glob("sample_*/genotype.yaml"))]


def test_samples_of_a_space_are_seeded_and_cover_its_ops(tmp_path, capsys):
    assert main(["derive", "--sample", "40", "ruas_scene", "-o", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert "wrote 40 genotypes" in capsys.readouterr().out
    assert main(["derive", "--sample", "40", "ruas_scene", "-o", str(tmp_path / "b"), "--seed", "3"]) == 0
    assert main(["derive", "--sample", "40", "ruas_scene", "-o", str(tmp_path / "c"), "--seed", "4"]) == 0
    a, b, c = (_choices(tmp_path / n) for n in "abc")
    assert len(a) == 40 and a == b and a != c
    labels = load_space("ruas_scene").labels()
    assert set(a[0]) == set(labels)
    for label, cands in labels.items():
        counts = collections.Counter(s[label] for s in a)
        assert set(counts) <= set(cands) and len(counts) >= len(cands) - 2  # 40 draws over 7 ops
    meta = yaml.safe_load((tmp_path / "a" / "sample_007" / "genotype.yaml").read_text())["meta"]
    assert meta["sampled"] == {"from": "ruas_scene", "seed": 3, "index": 7, "of": 40}


def test_samples_of_a_recipe_train(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["derive", "--sample", "2", str(RECIPES / "ruas_demo.yaml"), "-o", str(out)]) == 0
    first = load_genotype(out / "sample_001" / "genotype.yaml")
    assert first.network["type"] == "ruas" and len(first.choices) == 14
    assert main(["derive", str(out / "sample_001"), "--no-flops"]) == 0
    assert main(["train", str(out / "sample_002"), "--recipe", str(RECIPES / "ruas_demo_train.yaml"), *TINY_TRAIN,
                 "--output", str(tmp_path / "t")]) == 0
    # a genotype file's network and spaces are sampled again, with its labels
    assert main(["derive", "--sample", "3", str(out / "sample_001" / "genotype.yaml"), "-o", str(tmp_path / "g")]) == 0
    again = _choices(tmp_path / "g")
    assert len(again) == 3 and all(set(g) == set(first.choices) for g in again)
