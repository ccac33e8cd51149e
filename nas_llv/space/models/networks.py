"""Networks made of one or more space modules, built as a supernet or as a derived net.

A network builder in ``NETWORKS`` takes ``(spaces, make, **options)``: ``spaces`` maps module
names to SpaceSpecs and ``make(name, prefix)`` builds that module (searchable or fixed,
chosen by the caller). Labels of a multi-module network are prefixed by the module name.
A builder whose network comes in variants has a ``with_variant`` attribute,
``(network, spaces, choices, variant, where) -> (network, spaces, choices)``, which
``genotype.with_variant`` calls (``ruas``: ``ruas_with_variant``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from nas_llv.space import nni_bridge
from nas_llv.config import ConfigError, check_range
from nas_llv.registry import NETWORKS
from nas_llv.space.spec import SpaceSpec
from nas_llv.space.models.base import build_derived, build_searchable
from nas_llv.space.models.ruas import NoiseEstimator

Make = Callable[[str, str], nn.Module]
# RUAS module -> the model its space must declare (models/ruas.py registers them)
RUAS_MODELS = {"scene": "ruas_scene", "denoise": "ruas_denoise"}

RUAS_VARIANTS = ("ruas_s", "ruas", "ruas_a")  # scene module only; + denoiser; + noise gate (TPAMI)


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

    Retraining (``nas_llv.retrain.trainer.TrainingObjective``) reads the hooks below; a network that defines
    none is trained on its full forward, every objective entry back-propagated through all of it.
    """

    #: objective entry -> the submodule it trains (an attribute; None there: the entry is refused)
    objective_modules = {"scene": "scene", "task": "denoise", "estimator": "estimator", "calibrate": "scene"}
    #: what ``forward`` adds to the outputs of ``partial_forward``
    full_output_keys = frozenset({"x", "noise"})
    #: ω_i of strategy hyper's S2: the illumination (scene) module
    illumination_modules: tuple[str, ...] = ("scene",)

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

    # -- retraining hooks -------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        """ruas_s (no denoiser), ruas, or ruas_a (the denoiser gated by the noise estimator)."""
        return "ruas_s" if self.denoise is None else "ruas_a" if self.estimator is not None else "ruas"

    @property
    def own_output_entries(self) -> frozenset[str]:
        """Objective entries that see ``entry_outputs`` instead of the full forward's outputs:
        ``task`` (the denoiser's loss) when there is a denoiser, ``estimator`` (the noise
        estimator's) when there is one, and ``calibrate`` (SCI's self-calibration, always)."""
        own = {"calibrate"} if self.denoise is None else {"task", "calibrate"}
        return frozenset(own | ({"estimator"} if self.estimator is not None else set()))

    def entry_outputs(self, entry: str, out: Mapping[str, Any],
                      batch: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What ``task`` sees: the denoiser applied to the scene output *detached*, as the task level
        of the cooperative search does: it trains the denoiser only (a TV term reaching the scene
        module would darken u). ``out``: the outputs of ``forward`` or ``partial_forward``.

        What ``estimator`` sees: ``{'noise_map': Ψ_e(batch['low'])}``, θ: (N, 3, H, W). Ψ_e judges
        u^K, a normal-light image, whose noise is unknown on real data; it is trained on normal-light
        noisy/clean pairs standing for u^K (``noisy_demo``, loss ``noise_level``), the input taken
        as is, so the entry trains the estimator only.

        What ``calibrate`` sees: the scene outputs, ``y`` and ``illuminate``, the scene module as a
        function v -> its illumination t (loss ``sci_calibration``, which runs it on calibrated inputs)."""
        if entry == "calibrate":
            low = out.get("y") if batch is None else batch.get("low")
            if low is None:
                raise ConfigError("objective entry 'calibrate' needs the batch's low-light images 'low'")
            return {"t": out["t"], "u": out["u"], "y": low, "illuminate": lambda v: self.scene(v)["t"]}
        if entry == "estimator":
            if batch is None or batch.get("low") is None:
                raise ConfigError("objective entry 'estimator' needs the batch's noisy images 'low'")
            return {"noise_map": self.estimator(batch["low"])}
        u = out["u"].detach()
        # Without gradients an ungated full forward's x is denoise(u) already; with them, only the
        # detached copy keeps the task loss off the scene module.
        reuse = "x" in out and self.estimator is None and not torch.is_grad_enabled()
        return {"x": out["x"] if reuse else self.denoise(u), "u": u}

    def partial_forward(self, y: torch.Tensor) -> dict[str, Any]:
        """The scene module's outputs alone (no ``x``): all the objective needs when no entry but
        ``task`` reads ``x``, so with ``{scene, task}`` a step runs the scene module once and the
        denoiser once (in ``entry_outputs``)."""
        return self.scene(y)

    def random_init_warnings(self, objective: Iterable[str] = ()) -> list[str]:
        """What retraining from random weights with these ``objective`` entries leaves untrained:
        RUAS_A's noise estimator unless an ``estimator`` entry trains it."""
        if self.estimator is None or "estimator" in objective:
            return []
        return ["variant ruas_a: no objective term trains the noise estimator; its gate stays random "
                "unless --init gives a model that has one, or train.objective has an 'estimator' entry "
                "(recipes/ruas_a_estimator_train.yaml)"]


@dataclass(frozen=True)
class RUASOptions:
    """``network.options`` of a RUAS network: the variant (ruas_s: scene module only; ruas: and the
    denoiser; ruas_a: and the noise-estimation gate), the gate's threshold on the estimated noise
    level, and the estimator's width."""

    variant: str = "ruas"
    threshold: float = 0.035
    estimator_width: int = 32

    def validate(self) -> None:
        if self.variant not in RUAS_VARIANTS:
            raise ValueError(f"variant={self.variant!r} is not allowed; allowed: {', '.join(RUAS_VARIANTS)}")
        check_range("threshold", self.threshold, 0.0)
        check_range("estimator_width", self.estimator_width, 1)


@NETWORKS.register("ruas", config=RUASOptions)
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


def ruas_with_variant(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec], choices: Mapping[str, str],
                      variant: str, where: str) -> tuple[dict[str, Any], dict[str, SpaceSpec], dict[str, str]]:
    """The ``ruas`` builder's variant hook (``genotype.with_variant``): (network, spaces, choices) of
    the genotype as ``variant``. ruas_s drops the denoiser's space and choices; a genotype searched
    as ruas_s may keep the denoiser's space but has no denoiser choices, so it cannot become ruas
    or ruas_a. ``where`` names the setting in errors (``train.variant``)."""
    if variant not in RUAS_VARIANTS:
        raise ConfigError(f"{where}={variant}: unknown RUAS variant; allowed: {', '.join(RUAS_VARIANTS)}")
    spaces, choices = dict(spaces), dict(choices)
    if variant == "ruas_s":
        spaces.pop("denoise", None)
        choices = {k: v for k, v in choices.items() if not k.startswith("denoise.")}
    elif "denoise" not in spaces or not any(k.startswith("denoise.") for k in choices):
        raise ConfigError(f"{where}={variant} needs a denoise module; this genotype chooses no denoiser ops "
                          f"(it was searched as ruas_s); use ruas_s, or a genotype searched as ruas or ruas_a")
    return {**network, "variant": variant}, spaces, choices


ruas.with_variant = ruas_with_variant  # type: ignore[attr-defined]


def _check_model(module: str, space: SpaceSpec, model: str) -> None:
    kind = space.model.get("type")
    if kind != model:
        raise ConfigError(f"network ruas: module '{module}' needs a space with model type {model}, but space "
                          f"'{space.name}' has model type {kind} (e.g. the shipped space {model})")


def _build(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec], make: Make) -> nn.Module:
    opts = dict(network)
    return NETWORKS.get(opts.pop("type", "single"))(spaces, make, **opts)


def build_search_network(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec],
                         merge_edges: bool = True, relaxation: str = "softmax") -> nni_bridge.Space:
    """The supernet: NNI-rooted; ``.net`` is the network, each module with its own ``.arch`` (mixing
    with ``relaxation``, ``supernet.RELAXATIONS``); ``merge_edges``: ``build_searchable``'s."""
    return nni_bridge.Space(lambda: _build(network, spaces,
                                           lambda k, p: build_searchable(spaces[k], p, merge_edges, relaxation)))


def build_fixed_network(network: Mapping[str, Any], spaces: Mapping[str, SpaceSpec],
                        genotype: Mapping[str, str]) -> nn.Module:
    """The derived network named by ``genotype``, from the op table alone."""
    return _build(network, spaces, lambda k, p: build_derived(spaces[k], genotype, p))
