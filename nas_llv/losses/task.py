"""High-level task losses: a stand-in for RUAS's detection task that needs no download.

``edge`` (``EdgeLoss``): the head of the ``ruas_highlevel`` network predicts the edge map of the
normal-light image from the enhanced low-light one. The target is scikit-image's
``filters.sobel(color.rgb2gray(high))``: grey = 0.2125 R + 0.7154 G + 0.0721 B, the Sobel
derivatives with the kernels [1, 2, 1]/4 (smoothing) and [1, 0, -1] (difference), borders
reflected (the edge pixel repeated), magnitude sqrt((g_x² + g_y²) / 2) in [0, 1]; ``gain``
scales it (clipped to 1). The loss is binary cross-entropy with these soft targets on the
logits (``form: bce``, as edge detectors such as HED train), or the mean |sigmoid - target|
(``form: l1``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nas_llv.config import ConfigError
from nas_llv.losses.base import Loss, check_choice, check_positive, register

# scikit-image's rgb2gray weights (ITU-R BT.709 luma on linear-looking values)
GREY = (0.2125, 0.7154, 0.0721)
EDGE_FORMS = ("bce", "l1")


def sobel_edges(img: torch.Tensor) -> torch.Tensor:
    """img: (N, 3, H, W) (or (N, 1, H, W) grey) in [0, 1] -> Sobel magnitude (N, 1, H, W) in [0, 1],
    as ``skimage.filters.sobel(skimage.color.rgb2gray(img))``."""
    if img.shape[1] == 3:
        img = (img * img.new_tensor(GREY).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif img.shape[1] != 1:
        raise ConfigError(f"sobel_edges: expected 1 or 3 channels, got {img.shape[1]}")
    smooth = img.new_tensor([1.0, 2.0, 1.0]) / 4
    diff = img.new_tensor([1.0, 0.0, -1.0])
    kx = (smooth[:, None] * diff[None, :]).view(1, 1, 3, 3)  # differentiate along W, smooth along H
    padded = F.pad(img, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(-1, -2))
    return torch.sqrt((gx.square() + gy.square()) / 2)


@register("edge")
class EdgeLoss(Loss):
    """Edge-map loss of the ``ruas_highlevel`` head: the logits ``key`` (default ``edge_logits``,
    (N, K, H, W), the first map is the edge map) against ``min(gain * sobel_edges(high), 1)``
    (N, 1, H, W)."""

    def __init__(self, gain: float = 1.0, form: str = "bce", key: str = "edge_logits") -> None:
        super().__init__()
        check_positive(self.loss_name, "gain", gain)
        check_choice(self.loss_name, "form", form, EDGE_FORMS)
        self.gain, self.form, self.needs = float(gain), form, (key, "high")

    def target(self, high: torch.Tensor) -> torch.Tensor:
        return (self.gain * sobel_edges(high)).clamp(max=1.0)

    def compute(self, logits: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        logits = logits[:, :1]
        if logits.shape[-2:] != high.shape[-2:]:
            raise ConfigError(f"loss 'edge': the edge logits {tuple(logits.shape[-2:])} and the ground truth "
                              f"{tuple(high.shape[-2:])} must have the same height and width")
        target = self.target(high).to(logits.dtype)
        if self.form == "bce":
            return F.binary_cross_entropy_with_logits(logits, target)
        return (torch.sigmoid(logits) - target).abs().mean()

    def extra_repr(self) -> str:
        return f"gain={self.gain}, form={self.form}, key={self.needs[0]}"
