"""No-reference regularisers of Zero-DCE (Guo et al., CVPR 2020, "Zero-reference deep curve
estimation for low-light image enhancement", Sec. 3.3), for training an enhancer without ground
truth. RUAS's own objective (``ruas_scene``) has no term that fixes the output's exposure or its
colour balance: its fidelity ``||t - y||^2`` is least at t = y, i.e. u = y / t = 1 (white), and a
per-channel t may drift apart between channels (a cast). These two terms hold both:

- ``exposure`` (Zero-DCE Eq. 4): ``mean_k |Y_k - E|``, Y_k the mean intensity (mean over RGB) of
  the k-th non-overlapping ``patch`` x ``patch`` region of the enhanced image, E = ``level``.
  The paper's defaults: 16 x 16 regions, E = 0.6 ("E in [0.4, 0.7] gives similar results").
  The paper writes the L1 distance; its public code squares it. ``power`` picks (1 = paper).
- ``color_constancy`` (Zero-DCE Eq. 5, the gray-world assumption): ``sum over (R,G), (R,B),
  (G,B) of (J_p - J_q)^2``, J_p the mean of channel p over each image, averaged over images.
  (The public code takes the square root of the sum of squares of those squares; we keep the
  paper's formula.)

Both read ``key`` (default ``u``, RUAS's enhanced image) and need no ground truth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nas_llv.losses.base import Loss, check_choice, check_positive, register


def patch_means(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Mean intensity (over channels) of each non-overlapping ``patch`` square: (N, 1, H//p, W//p).

    An image smaller than one patch counts as one region."""
    y = x.mean(dim=1, keepdim=True)
    if min(y.shape[-2:]) < patch:
        return y.mean(dim=(2, 3), keepdim=True)
    return F.avg_pool2d(y, patch)


@register("exposure")
class ExposureLoss(Loss):
    """Zero-DCE's exposure control: ``mean_k |Y_k - level|^power``; x: (N, 3, H, W) in [0, 1]."""

    def __init__(self, key: str = "u", level: float = 0.6, patch: int = 16, power: int = 1) -> None:
        super().__init__()
        check_positive(self.loss_name, "level", level)
        check_positive(self.loss_name, "patch", patch)
        check_choice(self.loss_name, "power", power, (1, 2))
        self.needs, self.level, self.patch, self.power = (key,), float(level), int(patch), power

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        return (patch_means(x, self.patch) - self.level).abs().pow(self.power).mean()

    def extra_repr(self) -> str:
        return f"key={self.needs[0]}, level={self.level}, patch={self.patch}, power={self.power}"


def channel_gaps(x: torch.Tensor) -> torch.Tensor:
    """(J_R - J_G, J_R - J_B, J_G - J_B) per image, J_c the mean of channel c: (N, 3)."""
    j = x.mean(dim=(2, 3))
    return torch.stack([j[:, 0] - j[:, 1], j[:, 0] - j[:, 2], j[:, 1] - j[:, 2]], dim=1)


@register("color_constancy")
class ColorConstancyLoss(Loss):
    """Zero-DCE's colour constancy: ``mean_n sum_(p,q) (J_p - J_q)^2``; x: (N, 3, H, W)."""

    def __init__(self, key: str = "u") -> None:
        super().__init__()
        self.needs = (key,)

    def compute(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"loss 'color_constancy' expects RGB images (N, 3, H, W), got {tuple(x.shape)}")
        return channel_gaps(x).square().sum(dim=1).mean()

    def extra_repr(self) -> str:
        return f"key={self.needs[0]}"


__all__ = ["ColorConstancyLoss", "ExposureLoss", "channel_gaps", "patch_means"]
