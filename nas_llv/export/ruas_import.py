"""Import the RUAS authors' published weights into a nas-llv model (and export back).

Two public layouts (the cell edges are ``c1_d, c1_r, c2_d, c2_r, c3_d, c3_r, c4``, fusion ``c5``;
skip edges have no weights):

- CVPR-2021 release (``lol.pt``, ``upe.pt``): ``enhance_net.iems.{k}.cell.<edge>.op.*`` (3 stages,
  3 channels), ``denoise_net.stem``, ``denoise_net.nrms.{k}.<edge>.op.*`` (3 blocks, 6 channels),
  ``denoise_net.activate.0``. ``denoise.pt`` is the denoiser alone, without ``denoise_net.``.
- TPAMI release: the same, with another denoiser genotype and the noise estimator
  ``estimation.estimation.{0,2,4,6,8}`` (RUAS_A).

The two releases also differ in the scene module's floor on t: the CVPR code clamps
sigmoid(.) to [1e-3, 1], the TPAMI code to [1e-4, 1]. The imported genotype records it.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.space.genotype import Genotype, with_variant
from nas_llv.safe_load import load_torch_file
from nas_llv.export.modelfile import load_weights
from nas_llv.space.spec import SpaceSpec, load_space

RELEASES = ("cvpr", "tpami")  # published RUAS weight layouts
EDGES = ("c1_d", "c1_r", "c2_d", "c2_r", "c3_d", "c3_r", "c4")
SCENE = ("skip", "resconv_1x1", "resdilconv_3x3_d2", "conv_3x3", "conv_3x3", "skip", "conv_3x3")
DENOISE = {
    "cvpr": ("resconv_1x1", "resconv_1x1", "resdilconv_3x3_d2", "skip", "resconv_1x1", "resconv_1x1", "skip"),
    "tpami": ("resconv_1x1", "resconv_3x3", "dilconv_3x3_d2", "resconv_1x1", "resconv_3x3", "conv_3x3", "resconv_3x3"),
}
T_MIN = {"cvpr": 1e-3, "tpami": 1e-4}
DEFAULT_VARIANT = {"cvpr": "ruas", "tpami": "ruas_a"}
THRESHOLD = 0.035

# (authors' key prefix, nas-llv key prefix); {i} is a stage/block index, {e} an edge name.
_RENAMES = (
    ("enhance_net.iems.{i}.cell.c5.", "scene.stages.{i}.concat_proj.out."),
    ("enhance_net.iems.{i}.cell.{e}.op.", "scene.stages.{i}.edges.{e}.op."),
    ("denoise_net.stem.", "denoise.stem."),
    ("denoise_net.nrms.{i}.c5.", "denoise.blocks.{i}.concat_proj.out."),
    ("denoise_net.nrms.{i}.{e}.op.", "denoise.blocks.{i}.edges.{e}.op."),
    ("denoise_net.activate.0.", "denoise.head."),
    ("estimation.estimation.{i}.", "estimator.estimation.{i}."),
)


def _pattern(template: str) -> re.Pattern[str]:
    text = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{e\}", r"(?P<e>c[1-3]_[dr]|c4)")
    return re.compile(text)


def _rename(key: str, forward: bool) -> str | None:
    for theirs, ours in _RENAMES:
        src, dst = (theirs, ours) if forward else (ours, theirs)
        m = _pattern(src).match(key)
        if m:
            return dst.format(**m.groupdict()) + key[m.end():]
    return None


def from_ruas_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The authors' state dict (whole network) renamed to nas-llv's ``RUAS`` keys."""
    renamed = {key: _rename(key, forward=True) for key in state}
    unknown = [key for key, new in renamed.items() if new is None]
    if unknown:
        raise ConfigError(f"unrecognised RUAS weight names: {', '.join(unknown[:4])}"
                          f"{' ...' if len(unknown) > 4 else ''}; expected the CVPR or TPAMI release layout")
    return {renamed[key]: value for key, value in state.items()}


def to_ruas_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """nas-llv ``RUAS`` weights renamed to the authors' layout (their code can load them)."""
    out = {}
    for key, value in state.items():
        new = _rename(key, forward=False)
        if new is None:
            raise ConfigError(f"'{key}' has no counterpart in the authors' RUAS layout")
        out[new] = value
    return out


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A published checkpoint as a flat {name: tensor}; unwraps 'state_dict'/'model' and 'module.'."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such weights file")
    data = load_torch_file(path, "PyTorch checkpoint of RUAS weights")
    for wrapper in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ConfigError(f"{path}: expected a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in data.items()}


def detect_release(state: Mapping[str, torch.Tensor]) -> str:
    """'tpami' when the noise estimator or a weighted denoiser c4 edge is present, else 'cvpr'."""
    if any(k.startswith("estimation.") for k in state):
        return "tpami"
    # The CVPR denoiser's c4 edge is a skip (no weights); the TPAMI one is a 3x3 residual conv.
    return "tpami" if any(re.search(r"nrms\.\d+\.c4\.op\.", k) for k in state) else "cvpr"


def ruas_genotype(release: str, variant: str | None = None, denoiser_only: bool = False) -> Genotype:
    """The published architecture of ``release`` as a nas-llv genotype (reference-mode options)."""
    if release not in RELEASES:
        raise ConfigError(f"unknown RUAS release '{release}'; allowed: {', '.join(RELEASES)}")
    denoise = load_space("ruas_denoise")
    denoise_choices = dict(zip(EDGES, DENOISE[release]))
    meta = {"source": f"RUAS {release.upper()} release"}
    if denoiser_only:
        return Genotype({"type": "single"}, {"denoise": denoise}, denoise_choices, meta)
    variant = variant or DEFAULT_VARIANT[release]
    network: dict[str, Any] = {"type": "ruas", "variant": "ruas"}
    if variant == "ruas_a":
        network["threshold"] = THRESHOLD
    spaces = {"scene": _scene_space(release), "denoise": denoise}
    choices = {**{f"scene.{e}": op for e, op in zip(EDGES, SCENE)},
               **{f"denoise.{e}": op for e, op in denoise_choices.items()}}
    return with_variant(Genotype(network, spaces, choices, meta), variant, "--variant")


def _scene_space(release: str) -> SpaceSpec:
    scene = load_space("ruas_scene")
    model = {**scene.model, "gamma": 0.5, "t_min": T_MIN[release], "window": 2, "rectify_from": "u"}
    return dataclasses.replace(scene, model=model)


def import_ruas(path: str | Path, release: str | None = None,
                variant: str | None = None) -> tuple[nn.Module, Genotype, dict[str, Any]]:
    """Build the nas-llv network of a published RUAS checkpoint and load its weights.

    Returns (net in eval mode, genotype, provenance for the model file's ``extra``).
    """
    raw = read_weights(path)
    denoiser_only = any(k.startswith("stem.") for k in raw) and not any(k.startswith("enhance_net.") for k in raw)
    state = {f"denoise_net.{k}": v for k, v in raw.items()} if denoiser_only else raw
    found = detect_release(state)
    release = release or found
    if denoiser_only and variant is not None:
        raise ConfigError(f"{path}: holds the denoiser alone, which has no variants; leave out --variant")
    if release == "cvpr" and variant == "ruas_a":
        raise ConfigError(f"{path}: variant ruas_a needs the TPAMI noise estimator, which the CVPR release lacks; "
                          f"use ruas (scene + denoiser) or ruas_s (scene only)")
    genotype = ruas_genotype(release, variant, denoiser_only)
    ours = from_ruas_keys(state)
    if denoiser_only:
        ours = {k.removeprefix("denoise."): v for k, v in ours.items()}
    net = genotype.build()
    modules = {k.split(".", 1)[0] for k in net.state_dict()}
    # a variant may leave a module out (ruas_s: the denoiser; ruas on TPAMI weights: the estimator)
    dropped = sorted({k.split(".", 1)[0] for k in ours} - modules)
    hint = f" (its keys look like the {found.upper()} release)" if found != release else ""
    load_weights(net, {k: v for k, v in ours.items() if k.split(".", 1)[0] in modules}, str(path),
                 f"the RUAS {release.upper()} architecture{hint}")
    extra = {"imported_from": str(path), "release": release, "unused": dropped}
    return net.eval(), genotype, extra
