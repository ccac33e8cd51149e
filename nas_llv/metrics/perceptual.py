"""LPIPS (Zhang et al. 2018) through the ``lpips`` package, without ever downloading weights.

The package's linear calibration layers ship inside it; the backbone needs torchvision's ImageNet
weights, which ``lpips`` would fetch through ``torchvision`` (a download when they are not cached).
Here the backbone is always built at random by ``lpips`` and the ImageNet weights are loaded by us
from the torch hub cache, only when the file is already there; otherwise LPIPS stays empty (None).
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

logger = logging.getLogger(__name__)

# lpips net name -> (label for messages, torchvision weights enum holding the checkpoint URL,
# the least height and width its pooling stack accepts)
_BACKBONES = {
    "alex": ("AlexNet", "AlexNet_Weights", 31),
    "vgg": ("VGG16", "VGG16_Weights", 16),
    "squeeze": ("SqueezeNet1.1", "SqueezeNet1_1_Weights", 17),
}


def _check_net(net: str) -> None:
    if net not in _BACKBONES:
        raise ValueError(f"LPIPS: net {net!r} is not allowed; allowed: {', '.join(_BACKBONES)}")


def backbone_weights_path(net: str) -> Path:
    """Where torchvision caches the ImageNet weights of an lpips backbone (``alex|vgg|squeeze``).

    ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``, as
    ``torch.hub.load_state_dict_from_url`` names it.
    """
    _check_net(net)
    import torchvision  # only here: naming the metrics leaves torchvision unimported

    return hub_checkpoint(getattr(torchvision.models, _BACKBONES[net][1]).IMAGENET1K_V1.url)


def hub_checkpoint(url: str) -> Path:
    """The file torch.hub caches ``url`` as: ``torch.hub.get_dir()/checkpoints/<file name>``.

    nas-llv only ever reads such a file when it is already there; it never downloads."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _build_random(net: str) -> nn.Module:
    import lpips  # deferred: importing lpips pulls in its trainer module

    with warnings.catch_warnings():
        # lpips still calls torchvision with the deprecated ``pretrained=`` argument.
        warnings.filterwarnings("ignore", message=r".*deprecated since 0\.13", category=UserWarning)
        return lpips.LPIPS(net=net, pnet_rand=True, pretrained=True, verbose=False)


def _load_backbone(model: nn.Module, path: Path, label: str) -> None:
    # lpips splits torchvision's ``features`` into slices that keep the layer indices as names:
    # "slice2.3.weight" is "features.3.weight".
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = {}
    for key in model.net.state_dict():
        source = "features." + key.split(".", 1)[1]
        if source not in state:
            raise RuntimeError(f"{path}: not a torchvision {label} checkpoint (no {source!r})")
        mapped[key] = state[source]
    model.net.load_state_dict(mapped, strict=True)


class LPIPSMetric:
    """LPIPS distance, or None when the backbone's ImageNet weights are not cached.

    net: ``alex`` (the usual choice), ``vgg`` or ``squeeze``. device: None follows the inputs.
    random_backbone: a randomly initialised backbone under the packaged linear layers (for tests;
    its values are not LPIPS). Construction logs one warning when the weights are missing.
    """

    def __init__(self, net: str = "alex", device: str | torch.device | None = None,
                 random_backbone: bool = False) -> None:
        _check_net(net)
        self.net = net
        self.device = None if device is None else torch.device(device)
        self.weights_path: Path | None = None if random_backbone else backbone_weights_path(net)
        self.model: nn.Module | None = None
        label = _BACKBONES[net][0]
        if self.weights_path is not None and not self.weights_path.is_file():
            logger.warning("LPIPS: %s ImageNet weights not found at %s; LPIPS left empty",
                           label, self.weights_path)
            return
        self.model = _build_random(net)
        if self.weights_path is not None:
            _load_backbone(self.model, self.weights_path, label)
        if self.device is not None:
            self.model.to(self.device)

    @property
    def min_size(self) -> int:
        """The least image height and width the backbone takes."""
        return _BACKBONES[self.net][2]

    @property
    def available(self) -> bool:
        """True when ``__call__`` returns values."""
        return self.model is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """x, y: (N, 3, H, W) in [0, 1]. Returns (N,) float32 distances (0 for identical), or None."""
        if self.model is None:
            return None
        if x.dim() != 4 or x.shape != y.shape or x.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two (N, 3, H, W) tensors, got {tuple(x.shape)} and {tuple(y.shape)}")
        dev = self.device or x.device
        self.model.to(dev)
        a, b = (t.to(dev, torch.float32) * 2 - 1 for t in (x, y))  # lpips takes [-1, 1]
        with torch.no_grad():
            return self.model(a, b).flatten()
