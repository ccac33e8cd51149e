"""Networks made of one or more space modules, built as a supernet or as a derived net.

A network builder in ``NETWORKS`` takes ``(spaces, make, **options)``: ``spaces`` maps module
names to SpaceSpecs and ``make(name, prefix)`` builds that module (searchable or fixed,
chosen by the caller). Labels of a multi-module network are prefixed by the module name.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from nas_llv.space import nni_bridge
from nas_llv.choices import RUAS_VARIANTS
from nas_llv.config import ConfigError
from nas_llv.registry import NETWORKS
from nas_llv.space.spec import SpaceSpec
from nas_llv.space.models.base import build_derived, build_searchable
from nas_llv.space.models.ruas import NoiseEstimator

Make = Callable[[str, str], nn.Module]
# RUAS module -> the model its space must declare (models/ruas.py registers them)
RUAS_MODELS = {"scene": "ruas_scene", "denoise": "ruas_denoise"}


@NETWORKS.register("single")
def single(spaces: Mapping[str, SpaceSpec], make: Make) -> nn.Module:
    """One space's model on its own; labels carry no prefix."""
    if len(spaces) != 1:
        raise ConfigError(f"network 'single' takes one space, got {len(spaces)}: {', '.join(spaces)}")
    return make(next(iter(spaces)), "")


class RUAS(nn.Module):
    """Scene module, then (RUAS, RUAS_A) the denoiser, gated in RUAS_A by the noise level.

    y: (N, 3, H, W) in [0, 1] -> the scene outputs plus 'x', the final image, and for
    RUAS_A 'noise' (N,), the estimated noise level.
    """

    def __init__(self, scene: nn.Module, denoise: nn.Module | None = None,
                 estimator: NoiseEstimator | None = None, threshold: float = 0.035) -> None:
        super().__init__()
        self.scene, self.denoise, self.estimator, self.threshold = scene, denoise, estimator, threshold

    def forward(self, y: torch.Tensor) -> dict[str, Any]:
        out = self.scene(y)
        u = out["u"]
        if self.denoise is None:
            out["x"] = u
            return out
        if self.estimator is None:
            out["x"] = self.denoise(u)
            return out
        out["noise"] = level = self.estimator.level(u)
        noisy = level >= self.threshold
        if not bool(noisy.any()):  # the denoiser is skipped, as in the public RUAS_A code
            out["x"] = u
        else:
            out["x"] = torch.where(noisy[:, None, None, None], self.denoise(u), u)
        return out


@NETWORKS.register("ruas")
def ruas(spaces: Mapping[str, SpaceSpec], make: Make, variant: str = "ruas", threshold: float = 0.035,
         estimator_width: int = 32) -> RUAS:
    if variant not in RUAS_VARIANTS:
        raise ConfigError(f"unknown RUAS variant '{variant}'; allowed: {', '.join(RUAS_VARIANTS)}")
    needed = ("scene",) if variant == "ruas_s" else ("scene", "denoise")
    missing = [k for k in needed if k not in spaces]
    if missing:
        raise ConfigError(f"RUAS variant '{variant}' needs spaces {list(needed)}; missing {missing}")
    for name in needed:
        _check_model(name, spaces[name], RUAS_MODELS[name])
    scene = make("scene", "scene.")
    denoise = make("denoise", "denoise.") if variant != "ruas_s" else None
    estimator = NoiseEstimator(estimator_width) if variant == "ruas_a" else None
    return RUAS(scene, denoise, estimator, threshold)


def _check_model(module: str, space: SpaceSpec, model: str) -> None:
    kind = space.model.get("type")
    if kind != model:
        raise ConfigError(f"network ruas: module '{module}' needs a space with model type {model}, but space "
                          f"'{space.name}' has model type {kind} (e.g. the shipped space {model})")


def _build(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec], make: Make) -> nn.Module:
    opts = dict(network)
    return NETWORKS.get(opts.pop("type", "single"))(spaces, make, **opts)


def build_search_network(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec],
                         fuse: bool = True) -> nni_bridge.Space:
    """The supernet: NNI-rooted; ``.net`` is the network, each module with its own ``.arch``."""
    return nni_bridge.Space(lambda: _build(network, spaces, lambda k, p: build_searchable(spaces[k], p, fuse)))


def build_fixed_network(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec],
                        genotype: Mapping[str, str]) -> nn.Module:
    """The derived network named by ``genotype``, from the op table alone."""
    return _build(network, spaces, lambda k, p: build_derived(spaces[k], genotype, p))
