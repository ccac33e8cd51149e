"""Losses, registered in ``nas_llv.registry.LOSSES``, and loss hyper-variables.

Every loss is called as ``loss(out, batch)`` and returns an unweighted scalar (see ``base``).
``LOSSES`` imports every module in this package on its first lookup (``nas_llv.registry``), which
registers them (``nas-llv list losses``): a new loss is one new file here. The imports below are
the package's public names, not its registrations.
"""
from __future__ import annotations

from nas_llv.losses.adversarial import AdversarialLoss, UNetDiscriminator, step_discriminators
from nas_llv.losses.base import Loss, fetch
from nas_llv.losses.image import (IllumPriorLoss, L1Loss, LuminanceLoss, MSELoss, SSIMLoss, TVLoss,
                    illumination_prior, total_variation)
from nas_llv.losses.noise import NoiseLevelLoss
from nas_llv.losses.perceptual import VGG19_LAYERS, PerceptualLoss, vgg19_weights_path
from nas_llv.losses.ruas import RUASDenoiseLoss, RUASSceneLoss, relative_total_variation, ruas_code_smoothness
from nas_llv.losses.task import EdgeLoss, sobel_edges
from nas_llv.losses.weighting import CompositeLoss, LossHypers, available_terms, build_composite, build_loss

__all__ = [
    "AdversarialLoss", "CompositeLoss", "EdgeLoss", "IllumPriorLoss", "L1Loss", "Loss", "LossHypers", "LuminanceLoss", "MSELoss", "NoiseLevelLoss",
    "PerceptualLoss", "RUASDenoiseLoss", "RUASSceneLoss", "SSIMLoss", "TVLoss", "VGG19_LAYERS",
    "available_terms", "build_composite", "build_loss", "fetch", "illumination_prior", "relative_total_variation",
    "ruas_code_smoothness", "sobel_edges", "step_discriminators", "total_variation", "UNetDiscriminator",
    "vgg19_weights_path",
]
