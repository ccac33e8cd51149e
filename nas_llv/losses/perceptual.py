"""VGG19 perceptual loss (TriCo Eq. 10, CollaBA Eq. 9), with weights loaded only from disk.

The ImageNet weights are read from ``weights`` or from where torchvision caches them,
``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``; nothing is ever downloaded. When the file
is absent, ``on_missing: fail`` (default) raises a ConfigError; ``drop`` logs one line and marks
the loss unavailable (``available = False``) so a composite leaves it out.

The VGG is held outside the module tree: it is frozen, follows the input's device and dtype, and
stays out of ``parameters()`` and ``state_dict()`` (no 80 MB of fixed weights in checkpoints).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.metrics.perceptual import hub_checkpoint
from nas_llv.losses.base import check_choice, register
from nas_llv.losses.image import IMAGENET_MEAN, IMAGENET_STD, PairedLoss

logger = logging.getLogger(__name__)


# VGG19's feature layers (configuration E of Simonyan & Zisserman, torchvision's ``cfgs["E"]``):
# conv widths, "M" a max-pool. Written out so that naming the layers (a recipe check) leaves
# torchvision unimported; torchvision builds the layers when the loss is built.
VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> dict[str, int]:
    """'conv1_1' / 'relu1_1' / 'pool1' ... -> index in torchvision's ``vgg19().features``."""
    names, block, conv, i = {}, 1, 1, 0
    for v in VGG19_CFG:
        if v == "M":
            names[f"pool{block}"] = i
            block, conv, i = block + 1, 1, i + 1
        else:
            names[f"conv{block}_{conv}"], names[f"relu{block}_{conv}"] = i, i + 1
            conv, i = conv + 1, i + 2
    return names


VGG19_LAYERS = _layer_names()


def vgg19_weights_path() -> Path:
    """Where torchvision caches VGG19's ImageNet weights: hub dir / checkpoints / file name of the URL."""
    import torchvision

    return hub_checkpoint(torchvision.models.VGG19_Weights.IMAGENET1K_V1.url)


def _build_features(last: int, path: Path | None) -> nn.Sequential:
    """VGG19 ``features[: last + 1]``, ImageNet weights from ``path`` (random when None), frozen."""
    from torchvision.models.vgg import make_layers

    features = make_layers(list(VGG19_CFG), batch_norm=False)[: last + 1]
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {k: state[f"features.{k}"] for k in features.state_dict() if f"features.{k}" in state}
        if len(wanted) != len(features.state_dict()):
            raise ConfigError(f"perceptual loss: {path} is not a torchvision VGG19 checkpoint")
        features.load_state_dict(wanted)
    features.eval().requires_grad_(False)
    return features


@register("perceptual")
class PerceptualLoss(PairedLoss):
    """Mean over ``layers`` of criterion(VGG19_j(x), VGG19_j(high)); x, high: (N, 3, H, W) in [0, 1].

    ``layers``: names like ``conv5_4``, ``relu5_4``, ``relu2_2`` (default ``conv5_4``: TriCo uses
    conv-layer features, pre-activation as in ESRGAN). ``criterion``: ``l1`` (TriCo) or ``mse``
    (CollaBA), averaged over feature elements. Inputs are normalised with ImageNet mean/std.
    ``random_init=True`` builds an untrained VGG: FOR TESTS ONLY, its features mean nothing.
    """

    def __init__(self, key: str = "x", layers: str | Sequence[str] = ("conv5_4",),
                 criterion: Literal["l1", "mse"] = "l1", weights: str | None = None,
                 on_missing: Literal["fail", "drop"] = "fail", random_init: bool = False) -> None:
        super().__init__(key)
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in layers if n not in VGG19_LAYERS]
        if not layers or unknown:
            raise ConfigError(f"loss 'perceptual': unknown VGG19 layer(s) {unknown or layers}; "
                              f"allowed: {', '.join(VGG19_LAYERS)}")
        check_choice(self.loss_name, "criterion", criterion, ("l1", "mse"))
        check_choice(self.loss_name, "on_missing", on_missing, ("fail", "drop"))
        self.layers, self.criterion = tuple(layers), criterion
        self._indices = sorted({VGG19_LAYERS[n] for n in layers})
        self._reason = ""
        path = None if random_init else Path(weights) if weights else vgg19_weights_path()
        if path is not None and not path.is_file():
            self._missing(path, on_missing)
            return
        # Plain attribute set through object.__setattr__: keeps the VGG out of the module tree.
        object.__setattr__(self, "_vgg", _build_features(self._indices[-1], path))

    def _missing(self, path: Path, on_missing: str) -> None:
        line = (f"perceptual loss: VGG19 ImageNet weights not found at {path}; copy "
                f"{path.name} there or set the loss's 'weights' option (nothing is downloaded)")
        if on_missing == "fail":
            raise ConfigError(line + "; or set on_missing: drop to train without this loss")
        logger.warning("%s; on_missing=drop, so the loss is left out", line)
        self.available, self._reason = False, line

    def unavailable_reason(self) -> str:
        return self._reason

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """VGG19 activations at ``layers`` for x: (N, 3, H, W) in [0, 1]."""
        vgg = self._vgg
        if next(vgg.parameters()).device != x.device or next(vgg.parameters()).dtype != x.dtype:
            vgg.to(device=x.device, dtype=x.dtype)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        h, feats = (x - mean) / std, {}
        for i, layer in enumerate(vgg):
            h = layer(h)
            if i in self._indices:
                feats[i] = h
        return [feats[VGG19_LAYERS[n]] for n in self.layers]

    def pair(self, x: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"loss 'perceptual' expects RGB images (N, 3, H, W), got {tuple(x.shape)}")
        with torch.no_grad():
            targets = self.features(high)
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        terms = [dist(fx, ft) for fx, ft in zip(self.features(x), targets)]
        return torch.stack(terms).mean()

    def extra_repr(self) -> str:
        return f"layers={self.layers}, criterion={self.criterion}, available={self.available}"
