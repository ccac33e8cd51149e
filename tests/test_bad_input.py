"""A corpus of user mistakes: each gives one line on stderr, exit status 2, and leaves nothing behind.

Every case builds its inputs in ``tmp_path`` (no fixtures in the repository), runs the CLI in
process from inside ``tmp_path`` (so a stray write would land there), then checks the exit status,
that stderr is one ``nas-llv <command>: error: ...`` line naming what was wrong, and that no file or
folder appeared besides the case's inputs.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import RECIPES
from nas_llv.cli import main
from nas_llv.registry import COMMANDS
from nas_llv.space.genotype import Genotype
from nas_llv.export.modelfile import save_model
from nas_llv.export.ruas_import import ruas_genotype
from nas_llv.space.spec import load_space, space_to_dict

SEARCH = str(RECIPES / "ruas_demo.yaml")
TRAIN = str(RECIPES / "ruas_demo_train.yaml")
TINY = ["search.epochs=1", "data.demo_size=32", "data.crop=16", "data.demo_count=4"]
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"
PROC = "/proc/nas-llv-no-such-dir/out"


# ---- inputs, made in the case's folder ---------------------------------------------------------

def _bytes(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return os.path.relpath(path)  # the case runs in its folder: relative paths, as a user types them


def _text(path: Path, text: str) -> str:
    return _bytes(path, text.encode())


def _binary(path: Path) -> str:
    return _bytes(path, BINARY)


def _latin1(path: Path) -> str:
    return _bytes(path, "name: café\n".encode("latin-1"))


@functools.lru_cache(maxsize=None)
def _denoise_space():
    return load_space("ruas_denoise")


def _denoise_genotype() -> Genotype:
    """A single-module genotype over the ruas_denoise space (3x3 convs everywhere)."""
    space = _denoise_space()
    return Genotype({"type": "single"}, {"net": space}, {e.label: "conv_3x3" for e in space.cell.searchable})


def _genotype(path: Path, edit: Callable[[dict], None] | None = None) -> str:
    data = _denoise_genotype().to_dict()
    if edit is not None:
        edit(data)
    return _text(path, yaml.safe_dump(data))


def _model(path: Path) -> str:
    geno = _denoise_genotype()
    save_model(path, geno, geno.build(channels=3, repeat=1), build={"channels": 3, "repeat": 1})
    return os.path.relpath(path)


def _image(path: Path, h: int, w: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)


def _pairs(root: Path, size: int = 16, high_size: int | None = None) -> str:
    _image(root / "low/a.png", size, size)
    _image(root / "high/a.png", high_size or size, high_size or size)
    return os.path.relpath(root)


def _summary(folder: Path, data: object) -> str:
    _text(folder / "summary.json", json.dumps(data))
    return os.path.relpath(folder)


def _space(path: Path, edit: Callable[[dict], None]) -> str:
    data = space_to_dict(_denoise_space())
    edit(data)
    return _text(path, yaml.safe_dump(data))


def _set(keys: str, value: object) -> Callable[[dict], None]:
    """An edit that sets the nested key ``a.b.c``."""
    def edit(data: dict) -> None:
        *parents, leaf = keys.split(".")
        for k in parents:
            data = data[k]
        data[leaf] = value
    return edit


def _drop_choice(data: dict) -> None:
    data["genotype"].pop(next(iter(data["genotype"])))


def _ruas_unprefixed(path: Path) -> str:
    """A ruas genotype whose one label lost its module prefix ('scene.c1_d' -> 'c1_d')."""
    data = ruas_genotype("cvpr", "ruas").to_dict()
    label = next(k for k in data["genotype"] if k.startswith("scene."))
    data["genotype"][label.split(".", 1)[1]] = data["genotype"].pop(label)
    return _text(path, yaml.safe_dump(data))


def _cycle(data: dict) -> None:
    data["cell"]["edges"].append({"from": "r3", "to": "r1"})  # r1 -> r2 -> r3 -> r1


# ---- the corpus: (argv builder, a fragment the message must hold) ------------------------------

Build = Callable[[Path], list]
CASES: list = []


def case(name: str, expect: str, build: Build) -> None:
    CASES.append(pytest.param(build, expect, id=name))


# list
case("list-unknown-kind", "invalid choice: 'opz'", lambda d: ["list", "opz"])
case("list-no-kind", "required: kind", lambda d: ["list"])
case("unknown-command", "invalid choice: 'serch'", lambda d: ["serch", SEARCH])
case("list-unknown-option", "nas-llv list: error: unrecognized arguments: --all", lambda d: ["list", "ops", "--all"])

# space show / draw
case("space-show-binary", "not a text YAML file", lambda d: ["space", "show", _binary(d / "s.yaml")])
case("space-show-latin1", "byte 0xe9", lambda d: ["space", "show", _latin1(d / "s.yaml")])
case("space-show-missing", "no such space file; shipped spaces:", lambda d: ["space", "show", "nope.yaml"])
case("space-show-folder", "is a folder", lambda d: ["space", "show", (d / "sp").mkdir() or "sp"])
case("space-show-empty", "got an empty file", lambda d: ["space", "show", _text(d / "s.yaml", "")])
case("space-show-list", "got list", lambda d: ["space", "show", _text(d / "s.yaml", "- a\n- b\n")])
case("space-show-tab", "not valid YAML", lambda d: ["space", "show", _text(d / "s.yaml", "a:\n\tb: 1\n")])
case("space-show-python-tag", "could not determine a constructor",
     lambda d: ["space", "show", _text(d / "s.yaml", "cell: !!python/object/apply:os.system [ls]\n")])
case("space-show-recipe", "this is a recipe file", lambda d: ["space", "show", SEARCH])
case("space-show-genotype", "this is a genotype file", lambda d: ["space", "show", _genotype(d / "g.yaml")])
case("space-show-unknown-key", "unknown key 'colour'",
     lambda d: ["space", "show", _space(d / "s.yaml", _set("colour", "red"))])
case("space-show-nan", "cell.activation.negative_slope: .nan is not a finite number",
     lambda d: ["space", "show", _space(d / "s.yaml", _set("cell.activation.negative_slope", float("nan")))])
case("space-show-inf-channels", "cell.channels: .inf is not a finite number",
     lambda d: ["space", "show", _space(d / "s.yaml", _set("cell.channels", float("inf")))])
case("space-show-unknown-op", "conv_9x9",
     lambda d: ["space", "show", _space(d / "s.yaml", _set("cell.ops", ["conv_3x3", "conv_9x9"]))])
case("space-show-cycle", "cycle", lambda d: ["space", "show", _space(d / "s.yaml", _cycle)])
case("space-show-extends-missing", "extends: no such file",
     lambda d: ["space", "show", _text(d / "s.yaml", "extends: nowhere.yaml\nname: x\n")])
case("space-show-zero-repeat", "repeat: must be >= 1",
     lambda d: ["space", "show", _space(d / "s.yaml", _set("repeat", 0))])
case("space-draw-under-file", "is a file, not a folder",
     lambda d: ["space", "draw", "ruas_cell", "-o", _text(d / "f.txt", "x") + "/cell.png"])
case("space-draw-proc", "virtual file system", lambda d: ["space", "draw", "ruas_cell", "-o", PROC + ".png"])
case("space-draw-to-folder", "is a folder; give a file path",
     lambda d: ["space", "draw", "ruas_cell", "-o", (d / "out").mkdir() or "out"])
case("space-draw-binary", "not a text YAML file", lambda d: ["space", "draw", _binary(d / "s.yaml"), "-o", "c.png"])

# search
case("search-no-recipe", "give a recipe file", lambda d: ["search"])
case("search-binary", "not a text YAML file (it holds NUL bytes", lambda d: ["search", _binary(d / "r.yaml")])
case("search-latin1", "not a text YAML file (byte 0xe9", lambda d: ["search", _latin1(d / "r.yaml")])
case("search-missing", "no such file", lambda d: ["search", "nope.yaml"])
case("search-folder", "is a folder", lambda d: ["search", (d / "r").mkdir() or "r"])
case("search-empty", "got an empty file", lambda d: ["search", _text(d / "r.yaml", "")])
case("search-scalar", "got str", lambda d: ["search", _text(d / "r.yaml", "just words\n")])
case("search-file-nan", "search.weights.lr: .nan is not a finite number",
     lambda d: ["search", _text(d / "r.yaml", "name: x\nsearch:\n  weights: {lr: .nan}\n")])
case("search-file-inf-loss", "losses.task.tv_weight: .inf is not a finite number",
     lambda d: ["search", _text(d / "r.yaml", "name: x\nlosses:\n  task: {type: ruas_denoise, tv_weight: .inf}\n")])
case("search-override-malformed", "override 'search.weights={lr: 1e-3': not valid YAML",
     lambda d: ["search", SEARCH, "search.weights={lr: 1e-3", *TINY])
case("search-override-python-tag", "YAML tags (!!python/object:os.system) are not allowed",
     lambda d: ["search", SEARCH, "search.epochs=!!python/object:os.system x", *TINY])
case("search-override-binary-tag", "YAML tags (!!binary)", lambda d: ["search", SEARCH, "seed=!!binary AAAA", *TINY])
case("search-override-custom-tag", "YAML tags (!mine)", lambda d: ["search", SEARCH, "seed=!mine 3", *TINY])
case("search-override-no-equals", "expected KEY=VALUE", lambda d: ["search", SEARCH, "epochs"])
case("search-override-not-mapping", "'seed' is not a mapping", lambda d: ["search", SEARCH, "seed.x=1"])
case("search-lr-nan-string", "search.weights.lr: 'nan' is not a finite number",
     lambda d: ["search", SEARCH, "search.weights.lr=nan", *TINY])
case("search-arch-lr-inf", ".inf is not a finite number", lambda d: ["search", SEARCH, "search.arch.lr=.inf", *TINY])
case("search-seed-nan", ".nan is not a finite number", lambda d: ["search", SEARCH, "seed=.nan", *TINY])
case("search-crop-inf", ".inf is not a finite number", lambda d: ["search", SEARCH, *TINY, "data.crop=.inf"])
case("search-hypergrad-nan", "override 'search.hypergrad.r=.nan': .nan",
     lambda d: ["search", SEARCH, "search.hypergrad.r=.nan", *TINY])
case("search-hypergrad-nan-string", "search.hypergrad.r: 'nan' is not a finite number",
     lambda d: ["search", SEARCH, "search.hypergrad.r=nan", *TINY])
case("search-loss-inf", "-.inf is not a finite number",
     lambda d: ["search", SEARCH, "losses.task.tv_weight=-.inf", *TINY])
case("search-betas-nan", ".nan is not a finite number",
     lambda d: ["search", SEARCH, "search.weights.betas=[0.9, .nan]", *TINY])
case("search-grad-clip-inf-string", "search.weights.grad_clip: 'inf' is not a finite number",
     lambda d: ["search", SEARCH, "search.weights.grad_clip=inf", *TINY])
case("search-unknown-key", "unknown key 'epoch'", lambda d: ["search", SEARCH, "search.epoch=2"])
case("search-wrong-type", "search.epochs: expected int, got 'two'", lambda d: ["search", SEARCH, "search.epochs=two"])
case("search-out-of-range", "epochs=0 must be >= 1", lambda d: ["search", SEARCH, "search.epochs=0"])
case("search-hessian-unknown-key", "search.hessian: unknown key 'iterations'; allowed: every, iters, tol, early_stop",
     lambda d: ["search", SEARCH, "search.hessian={iterations: 5}"])
case("search-early-stop-ratio", "search.hessian.early_stop: ratio=1.5 must be <= 1.0",
     lambda d: ["search", SEARCH, "search.hessian.early_stop={ratio: 1.5}"])
case("search-perturb-negative", "search.perturb: epsilon=-0.1 must be >= 0.0",
     lambda d: ["search", SEARCH, "search.perturb.epsilon=-0.1"])
case("search-cost-unknown-key", "search.cost: unknown key 'budget'; allowed: type, size, target, weight, limit",
     lambda d: ["search", SEARCH, "search.cost={budget: 1}"])
case("search-cost-type", "search.cost.type: 'gflops' is not allowed; allowed: flops, latency",
     lambda d: ["search", SEARCH, "search.cost.type=gflops"])
case("search-cost-target-zero", "search.cost: target=0.0 must be > 0.0",
     lambda d: ["search", SEARCH, "search.cost.target=0"])
case("search-cost-size", "search.cost: size=[600]: expected [width, height]",
     lambda d: ["search", SEARCH, "search.cost.size=[600]"])
case("search-cost-limit-not-random", "cost.limit=5 applies to strategy random",
     lambda d: ["search", SEARCH, "search.cost.limit=5"])
case("search-cost-target-random", "cost.target=1 does not apply to strategy random",
     lambda d: ["search", SEARCH, "search.strategy=random", "search.cost.target=1"])
case("search-cost-limit-below-cheapest",
     "search.cost.limit=0.001 GFLOPs: no genotype is that cheap; the cheapest costs 0.001327",
     lambda d: ["search", SEARCH, "search.strategy=random", "search.cost={limit: 0.001, size: [32, 24]}", *TINY])
case("search-aux-skip-wrong-type", "search.aux_skip.weight: expected a number, got 'one'",
     lambda d: ["search", SEARCH, "search.aux_skip.weight=one"])
case("search-loss-unknown-key", "r.yaml: losses.task: unknown key 'tv_wieght'; allowed: type, fidelity, tv_weight",
     lambda d: ["search", _text(d / "r.yaml", "name: x\nlosses:\n  task: {type: ruas_denoise, tv_wieght: 1}\n")])
case("search-loss-other-loss-key", "losses.task.win_size: belongs to loss ssim, not 'ruas_denoise'",
     lambda d: ["search", SEARCH, "losses.task.win_size=3"])
case("search-loss-term-wrong-type", "losses.lower.terms.ssim.win_size: expected int, got 'big'",
     lambda d: ["search", str(RECIPES / "llsr_demo.yaml"), "losses.lower.terms.ssim.win_size=big"])
case("search-unknown-loss", "losses.task.type: unknown loss 'l2'; allowed: adversarial,",
     lambda d: ["search", SEARCH, "losses.task.type=l2"])
case("search-hypergrad-unknown-key", "search.hypergrad: unknown key 'rr'; allowed: type, r, batched",
     lambda d: ["search", SEARCH, "search.hypergrad.rr=0.1"])
case("search-hypergrad-other-method-key",
     "search.hypergrad.cg_iters: belongs to hypergradient method implicit_cg, not 'finite_difference'",
     lambda d: ["search", SEARCH, "search.hypergrad.cg_iters=3"])
case("search-hypergrad-out-of-range", "search.hypergrad: cg_iters=0 must be >= 1",
     lambda d: ["search", SEARCH, "search.hypergrad={type: implicit_cg, cg_iters: 0}"])
case("search-unknown-strategy", "unknown strategy 'greedy'", lambda d: ["search", SEARCH, "search.strategy=greedy"])
case("search-unknown-device", "device='tpu'", lambda d: ["search", SEARCH, "device=tpu"])
case("search-scene-is-cell", "module 'scene' needs a space with model type ruas_scene",
     lambda d: ["search", SEARCH, "network.spaces.scene=ruas_cell", *TINY])
case("search-scene-is-denoise", "space 'ruas_denoise' has model type ruas_denoise",
     lambda d: ["search", SEARCH, "network.spaces.scene=ruas_denoise", *TINY])
case("search-denoise-is-scene", "module 'denoise' needs a space with model type ruas_denoise",
     lambda d: ["search", SEARCH, "network.spaces.denoise=ruas_scene", *TINY])
case("search-space-binary", "not a text YAML file",
     lambda d: ["search", SEARCH, f"network.spaces.scene={_binary(d / 's.yaml')}", *TINY])
case("search-space-missing", "no such space file", lambda d: ["search", SEARCH, "network.spaces.scene=nope", *TINY])
case("search-space-is-genotype", "this is a genotype file",
     lambda d: ["search", SEARCH, f"network.spaces.scene={_genotype(d / 'g.yaml')}", *TINY])
case("search-space-nan", ".nan is not a finite number",
     lambda d: ["search", SEARCH, f"network.spaces.denoise={_space(d / 's.yaml', _set('model.bogus', float('nan')))}",
                *TINY])
case("search-output-is-file", "--output f.txt: is a file, not a folder",
     lambda d: ["search", SEARCH, "--output", _text(d / "f.txt", "x"), *TINY])
case("search-output-proc", "virtual file system", lambda d: ["search", SEARCH, "--output", PROC, *TINY])
case("search-recipe-output-under-file", "is a file, not a folder",
     lambda d: ["search", SEARCH, f"output={_text(d / 'f.txt', 'x')}/runs", *TINY])
case("search-resume-missing", "no such run folder", lambda d: ["search", "--resume", "nope"])

# derive
case("derive-binary", "not a text YAML file", lambda d: ["derive", _binary(d / "g.yaml")])
case("derive-latin1", "not a text YAML file", lambda d: ["derive", _latin1(d / "g.yaml")])
case("derive-missing", "no such genotype file", lambda d: ["derive", "nope.yaml"])
case("derive-folder-without-genotype", "no genotype.yaml", lambda d: ["derive", (d / "run").mkdir() or "run"])
case("derive-empty", "got an empty file", lambda d: ["derive", _text(d / "g.yaml", "")])
case("derive-recipe", "is this a genotype file?", lambda d: ["derive", SEARCH])
case("derive-unknown-label", "genotype: unknown labels [c9_x]",
     lambda d: ["derive", _genotype(d / "g.yaml", _set("genotype.c9_x", "conv_3x3"))])
case("derive-unprefixed-label", "unknown labels [c1_d]", lambda d: ["derive", _ruas_unprefixed(d / "g.yaml")])
case("derive-missing-label", "genotype has no choice for edge",
     lambda d: ["derive", _genotype(d / "g.yaml", _drop_choice)])
case("derive-unknown-op", "genotype.c1_d",
     lambda d: ["derive", _genotype(d / "g.yaml", _set("genotype.c1_d", "conv_9x9"))])
case("derive-network-inf", "network.threshold: .inf is not a finite number",
     lambda d: ["derive", _genotype(d / "g.yaml", _set("network.threshold", float("inf")))])
case("derive-network-not-mapping", "network: expected a mapping",
     lambda d: ["derive", _genotype(d / "g.yaml", _set("network", "ruas"))])
case("derive-space-nan", "spaces.net.cell.activation.negative_slope: .nan",
     lambda d: ["derive", _genotype(d / "g.yaml", _set("spaces.net.cell.activation.negative_slope", float("nan")))])
case("derive-size-zero", "--size: width and height must be >= 1", lambda d: ["derive", "g.yaml", "--size", "0x0"])
case("derive-size-zero-height", "got '3x0'", lambda d: ["derive", "g.yaml", "--size", "3x0"])
case("derive-size-negative", "got '-2x4'", lambda d: ["derive", "g.yaml", "--size=-2x4"])
case("derive-size-words", "expected WIDTHxHEIGHT", lambda d: ["derive", "g.yaml", "--size", "big"])
case("derive-channels-zero", "--channels: must be >= 1", lambda d: ["derive", "g.yaml", "--channels", "0"])
case("derive-repeat-negative", "--repeat: must be >= 1", lambda d: ["derive", "g.yaml", "--repeat=-1"])
case("derive-channels-word", "expected a whole number", lambda d: ["derive", "g.yaml", "--channels", "wide"])
case("derive-sample-zero", "--sample: must be >= 1", lambda d: ["derive", "--sample", "0", "ruas_scene"])
case("derive-sample-unknown-space", "--sample nope_space: ", lambda d: ["derive", "--sample", "2", "nope_space"])
case("derive-sample-taken", "already holds samples; choose another -o DIR",
     lambda d: ["derive", "--sample", "2", "ruas_scene", "-o", _text(d / "out" / "sample_001" / "genotype.yaml", "x")
                and "out"])
case("derive-sample-draw", "--draw does not apply to --sample", lambda d: ["derive", "--sample", "2", "ruas_scene", "--draw"])
case("derive-output-without-sample", "give --sample N with it", lambda d: ["derive", "g.yaml", "-o", "out"])

# train
case("train-binary-genotype", "not a text YAML file", lambda d: ["train", _binary(d / "g.yaml"), "--recipe", TRAIN])
case("train-no-recipe", "give a recipe with --recipe", lambda d: ["train", _genotype(d / "g.yaml")])
case("train-binary-recipe", "not a text YAML file",
     lambda d: ["train", _genotype(d / "g.yaml"), "--recipe", _binary(d / "r.yaml")])
case("train-objective-inf", "override 'train.objective.scene=.inf'",
     lambda d: ["train", _genotype(d / "g.yaml"), "--recipe", TRAIN, "train.objective.scene=.inf"])
case("train-objective-nan-string", "train.objective.l1: 'nan' is not a finite number",
     lambda d: ["train", _genotype(d / "g.yaml"), "--recipe", TRAIN, "train.objective.l1=nan"])
case("train-unknown-label", "unknown labels [extra]",
     lambda d: ["train", _genotype(d / "g.yaml", _set("genotype.extra", "conv_3x3")), "--recipe", TRAIN])
case("train-output-is-file", "--output f.txt: is a file",
     lambda d: ["train", _genotype(d / "g.yaml"), "--recipe", TRAIN, "--output", _text(d / "f.txt", "x")])
case("train-missing-genotype", "nope.yaml", lambda d: ["train", "nope.yaml", "--recipe", TRAIN])

# import-ruas
case("import-missing", "no such weights file", lambda d: ["import-ruas", "nope.pt", "-o", "m.pt"])
case("import-output-folder", "--output out: is a folder",
     lambda d: ["import-ruas", _binary(d / "w.pt"), "-o", (d / "out").mkdir() or "out"])
case("import-output-under-file", "is a file, not a folder",
     lambda d: ["import-ruas", _binary(d / "w.pt"), "-o", _text(d / "f.txt", "x") + "/m.pt"])
case("import-output-proc", "virtual file system", lambda d: ["import-ruas", _binary(d / "w.pt"), "-o", PROC + ".pt"])
case("import-junk-weights", "w.pt", lambda d: ["import-ruas", _binary(d / "w.pt"), "-o", "m.pt"])
case("import-nas-llv-model", "unrecognised RUAS weight names",
     lambda d: ["import-ruas", _model(d / "w.pt"), "-o", "m.pt"])

# export
case("export-missing", "nope.pt: no such model file", lambda d: ["export", "nope.pt", "-o", "m.onnx"])
case("export-output-is-folder", "--output out: is a folder",
     lambda d: ["export", _model(d / "m.pt"), "-o", (d / "out").mkdir() or "out"])
case("export-output-is-model", "is the model file itself", lambda d: ["export", _model(d / "m.pt"), "-o", "m.pt"])
case("export-bad-opset", "--opset 5: not supported",
     lambda d: ["export", _model(d / "m.pt"), "-o", "m.onnx", "--opset", "5"])
case("export-junk-model", "cannot read as a nas-llv model file", lambda d: ["export", _binary(d / "w.pt"), "-o", "m.onnx"])

# enhance
case("enhance-out-is-in", "is the input folder",
     lambda d: ["enhance", _model(d / "m.pt"), _pairs(d / "p") + "/low", "p/low"])
case("enhance-out-inside-in", "lies inside the input folder",
     lambda d: ["enhance", _model(d / "m.pt"), _pairs(d / "p") + "/low", "p/low/out"])
case("enhance-out-is-file", "OUT_DIR f.txt: is a file",
     lambda d: ["enhance", _model(d / "m.pt"), _pairs(d / "p") + "/low", _text(d / "f.txt", "x")])
case("enhance-out-proc", "virtual file system",
     lambda d: ["enhance", _model(d / "m.pt"), _pairs(d / "p") + "/low", PROC])
case("enhance-in-missing", "IN_DIR nope: no such folder", lambda d: ["enhance", _model(d / "m.pt"), "nope", "out"])
case("enhance-in-is-file", "IN_DIR f.txt: is a file",
     lambda d: ["enhance", _model(d / "m.pt"), _text(d / "f.txt", "x"), "out"])
case("enhance-in-empty", "no images", lambda d: ["enhance", _model(d / "m.pt"), (d / "in").mkdir() or "in", "out"])
case("enhance-model-missing", "no such model file", lambda d: ["enhance", "nope.pt", _pairs(d / "p") + "/low", "out"])
case("enhance-model-junk", "m.pt", lambda d: ["enhance", _binary(d / "m.pt"), _pairs(d / "p") + "/low", "out"])
case("enhance-model-is-yaml", "g.yaml",
     lambda d: ["enhance", _genotype(d / "g.yaml"), _pairs(d / "p") + "/low", "out"])
case("enhance-bad-output-choice", "--output y: not allowed; allowed: x, u",
     lambda d: ["enhance", "m.pt", "in", "out", "--output", "y"])

# eval
EVAL = ["--device", "cpu", "--lpips-net", "none", "--repeats", "1", "--warmup", "0", "-q"]
case("eval-1x1-images", "a.png: the ground truth is 1x1, smaller than SSIM",
     lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p", 1), *EVAL])
case("eval-5x5-images", "(at least 7x7)", lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p", 5), *EVAL])
case("eval-out-dir-is-file", "--out-dir f.txt: is a file",
     lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p"), "-o", _text(d / "f.txt", "x"), *EVAL])
case("eval-out-dir-under-file", "is a file, not a folder",
     lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p"), "-o", _text(d / "f.txt", "x") + "/e", *EVAL])
case("eval-out-dir-proc", "virtual file system",
     lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p"), "--out-dir", PROC, *EVAL])
case("eval-data-missing", "expected paired folders", lambda d: ["eval", _model(d / "m.pt"), "--data", "nope", *EVAL])
case("eval-data-low-only", "p/low: no images",  # low/ alone is unpaired: scored without ground truth
     lambda d: ["eval", _model(d / "m.pt"), "--data", (d / "p/low").mkdir(parents=True) or "p", *EVAL])
case("eval-size-mismatch", "does not fit its input",
     lambda d: ["eval", _model(d / "m.pt"), "--data", _pairs(d / "p", 16, 24), *EVAL])
case("eval-repeats-zero", "need --repeats >= 1", lambda d: ["eval", "m.pt", "--data", "p", "--repeats", "0"])
case("eval-model-missing", "no such model file", lambda d: ["eval", "nope.pt", "--data", _pairs(d / "p"), *EVAL])
case("eval-no-data", "required: --data", lambda d: ["eval", "m.pt"])

# compare
case("compare-binary", "not a text JSON file", lambda d: ["compare", _binary(d / "summary.json")])
case("compare-binary-in-folder", "not a text JSON file",
     lambda d: ["compare", _bytes(d / "e/summary.json", BINARY) and "e"])
case("compare-latin1", "not a text JSON file", lambda d: ["compare", _latin1(d / "summary.json")])
case("compare-bad-json", "not valid JSON", lambda d: ["compare", _text(d / "summary.json", "{psnr: 3")])
case("compare-json-list", "expected a JSON object", lambda d: ["compare", _summary(d / "e", [1, 2])])
case("compare-json-string-metric", "'psnr' is 'high'", lambda d: ["compare", _summary(d / "e", {"psnr": "high"})])
case("compare-json-list-latency", "'latency_s' is [1]", lambda d: ["compare", _summary(d / "e", {"latency_s": [1]})])
case("compare-missing", "no summary.json here", lambda d: ["compare", "nope"])
case("compare-output-folder", "--output out: is a folder",
     lambda d: ["compare", _summary(d / "e", {"psnr": 20.0}), "-o", (d / "out").mkdir() or "out"])
case("compare-output-under-file", "is a file, not a folder",
     lambda d: ["compare", _summary(d / "e", {"psnr": 20.0}), "-o", _text(d / "f.txt", "x") + "/t.md"])
case("compare-output-proc", "virtual file system",
     lambda d: ["compare", _summary(d / "e", {"psnr": 20.0}), "-o", PROC + ".md"])

# sweep (Ray is in the test extra; every case fails before Ray starts)
case("sweep-no-recipe", "give a recipe file", lambda d: ["sweep"])
case("sweep-seeds-backwards", "--seeds 3-1: expected seeds >= 0", lambda d: ["sweep", SEARCH, "--seeds", "3-1"])
case("sweep-seeds-twice", "a seed is given twice", lambda d: ["sweep", SEARCH, "--seeds", "0-2,1"])
case("sweep-grid-no-values", "--grid search.beta: expected KEY=V1,V2",
     lambda d: ["sweep", SEARCH, "--grid", "search.beta"])
case("sweep-grid-seed", "use --seeds", lambda d: ["sweep", SEARCH, "--grid", "seed=1,2"])
case("sweep-grid-unknown-key", "search: unknown key 'bta'",
     lambda d: ["sweep", SEARCH, "--grid", "search.bta=1,2", *TINY])
case("sweep-grid-bad-value", "search.epochs: expected int, got 'two'",
     lambda d: ["sweep", SEARCH, "--grid", "search.epochs=1,two", *TINY])
case("sweep-eval-without-train", "has no train: section and there is no r_train.yaml beside it",
     lambda d: ["sweep", _text(d / "r.yaml", Path(SEARCH).read_text()), "--eval", _pairs(d / "p"), *TINY])
case("sweep-eval-missing", "--eval nope: expected paired folders",
     lambda d: ["sweep", SEARCH, "--eval", "nope", "--train-recipe", TRAIN, *TINY])
case("sweep-train-recipe-alone", "give --eval DIR too", lambda d: ["sweep", SEARCH, "--train-recipe", TRAIN])
case("sweep-cpus-zero", "need --cpus-per-trial >= 1", lambda d: ["sweep", SEARCH, "--cpus-per-trial", "0"])
case("sweep-max-gflops-zero", "--max-gflops 0: expected a number of GFLOPs > 0",
     lambda d: ["sweep", SEARCH, "--max-gflops", "0"])
case("sweep-resume-max-gflops", "give no recipe, --seeds, --grid, --eval, --train-recipe, --max-gflops or overrides",
     lambda d: ["sweep", "--resume", "s", "--max-gflops", "5"])
case("sweep-output-is-file", "--output f.txt: is a file",
     lambda d: ["sweep", SEARCH, "--output", _text(d / "f.txt", "x"), *TINY])
case("sweep-resume-not-a-sweep", "not a sweep folder (sweep.yaml is missing)",
     lambda d: ["sweep", "--resume", (d / "s").mkdir() or "s"])
case("sweep-resume-and-recipe", "give no recipe", lambda d: ["sweep", SEARCH, "--resume", "s"])

# data noise (nothing is written: the keys go to standard output)
case("runs-missing", "nope: no such folder", lambda d: ["runs", "nope"])
case("runs-a-file", "f.txt: no such folder", lambda d: ["runs", _text(d / "f.txt", "x")])
case("report-missing", "nope: no such run or sweep folder", lambda d: ["report", "nope"])
case("report-not-a-run", "e: not a run folder", lambda d: ["report", (d / "e").mkdir() or "e"])
case("report-plots", "argument --plots: invalid choice", lambda d: ["report", "nope", "--plots", "svg"])
case("data-no-action", "required: ACTION", lambda d: ["data"])
case("data-noise-missing", "nope: no such folder", lambda d: ["data", "noise", "nope"])
case("data-noise-no-images", "e: no images", lambda d: ["data", "noise", (d / "e").mkdir() or "e"])
case("data-noise-no-flat-tiles", "too few flat tiles",  # one flat grey image: no noise to measure
     lambda d: ["data", "noise", _image(d / "p/a.png", 64, 64) or "p"])
case("data-noise-patch", "--patch): expected a tile side >= 8", lambda d: ["data", "noise", "p", "--patch", "4"])


# ---- the check ---------------------------------------------------------------------------------

def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors exit
        return int(exc.code)


@pytest.mark.parametrize(("build", "expect"), CASES)
def test_bad_input_is_one_line_and_leaves_nothing(build, expect, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = build(tmp_path)
    before = _tree(tmp_path)
    capsys.readouterr()
    code = _run(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nas-llv") and ": error: " in lines[0], lines[0]
    assert expect in lines[0]
    assert code == 2
    assert _tree(tmp_path) == before


def test_the_corpus_covers_every_subcommand():
    covered = {case.id.split("-")[0] for case in CASES}
    assert len(CASES) >= 60
    assert {c.split("-")[0] for c in COMMANDS} <= covered


def test_enhance_overwrite_writes_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _pairs(tmp_path / "p", 8)
    assert main(["enhance", _model(tmp_path / "m.pt"), "p/low", "p/low", "--overwrite", "--device", "cpu", "-q"]) == 0
    assert "wrote 1 image(s) to p/low" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "p/low").iterdir()) == ["a.png"]


def test_eval_names_the_lpips_minimum(tmp_path, monkeypatch, capsys):
    """With LPIPS on (a random AlexNet here: no weights are cached), 16x16 images are too small."""
    import nas_llv.metrics as metrics

    monkeypatch.chdir(tmp_path)
    real = metrics.LPIPSMetric
    monkeypatch.setattr(metrics, "LPIPSMetric", lambda net, device=None: real(net, device, random_backbone=True))
    argv = ["eval", _model(tmp_path / "m.pt"), "--data", _pairs(tmp_path / "p", 16), "--device", "cpu", "-q"]
    before = _tree(tmp_path)
    assert main([*argv, "--lpips-net", "alex"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "LPIPS (alex; use --lpips-net none" in err and "at least 31x31" in err
    assert _tree(tmp_path) == before
