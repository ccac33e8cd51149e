"""CollaBA's input stem and content reconstruction block (CRB), as part choices of ``collaba_llsr``.

Tables (one factory signature per kind, as in ``parts.py``):

- ``STEMS[name](channels)``: x (N, 3, H, W) in [0, 1] -> features (N, C, H, W)
- ``RECONSTRUCTIONS[name](channels)``: (N, C, H, W) -> (N, C, H, W)

Readings of the paper (CollaBA Sec. 3.2, 3.2.2, Eq. 3) where it leaves a choice open:

- **Pixel-unshuffle input.** CollaBA unshuffles the input "to reduce the spatial size and enlarge
  the channel size" before the residual body. In a supernet every candidate of one label must
  return one shape, so the ``unshuffle`` stem re-shuffles after its convolution: PixelUnshuffle(2)
  -> 3x3 conv (12 -> 4C) -> LeakyReLU -> PixelShuffle(2), features at the input size. It is a
  2x2-patch embedding whose 3x3 conv sees 6x6 input pixels; the compute saving of a body that runs
  at half size is *not* reproduced by this candidate.
- **Three-path CRB (Eq. 3).** ``H_κ, H_o, H_v = Reshape(F_in)``, ``Concat[H_κ ⊗ Softmax(H_o) + H_v,
  F_in]``. Read as a global-context block (GCNet): three 1x1 convolutions of F_in give H_κ (C
  channels), H_o (one channel of attention logits) and H_v (C channels); Reshape flattens the
  positions, Softmax runs over the H·W positions, and ``⊗`` is the product of H_κ (C x HW) with
  the softmax weights (HW x 1), a per-image context vector (C) added to H_v at every pixel. The
  concatenation with F_in (2C channels) is brought back to C by a 1x1 convolution so the block
  keeps the width of the branch. One CRB serves every scale (CollaBA shares CRB parameters across
  its three scales, Fig. 4).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


def conv_stem(channels: int) -> nn.Sequential:
    """3x3 conv (3 -> C) + LeakyReLU(0.2). x (N, 3, H, W) -> (N, C, H, W)."""
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.LeakyReLU(0.2))


class UnshuffleStem(nn.Module):
    """PixelUnshuffle(2) -> 3x3 conv (12 -> 4C) -> LeakyReLU -> PixelShuffle(2).

    x: (N, 3, H, W), any H, W (replicate-padded to even, cropped back) -> (N, C, H, W).
    """

    def __init__(self, channels: int, factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.body = nn.Sequential(nn.PixelUnshuffle(factor), nn.Conv2d(3 * factor ** 2, channels * factor ** 2, 3, padding=1),
                                  nn.LeakyReLU(0.2), nn.PixelShuffle(factor))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.factor, 0, -h % self.factor), mode="replicate")
        return self.body(x)[..., :h, :w]


class CRB(nn.Module):
    """Three-path content reconstruction block, CollaBA Eq. (3) in its global-context reading.

    ctx = H_κ · softmax_positions(H_o) (N, C); y = ctx + H_v; out = Conv1x1(Concat[y, F_in]).
    x: (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.key = nn.Conv2d(channels, channels, 1)     # H_κ
        self.logit = nn.Conv2d(channels, 1, 1)          # H_o
        self.value = nn.Conv2d(channels, channels, 1)   # H_v
        self.fuse = nn.Conv2d(2 * channels, channels, 1)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """H_κ (N, C, HW) times softmax over the HW positions of H_o (N, HW, 1) -> (N, C, 1, 1)."""
        weights = self.logit(x).flatten(2).softmax(dim=-1)            # (N, 1, HW)
        return torch.bmm(self.key(x).flatten(2), weights.transpose(1, 2)).unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.context(x) + self.value(x), x], dim=1))


STEMS: dict[str, Callable[[int], nn.Module]] = {
    "conv": conv_stem,
    "unshuffle": UnshuffleStem,
}
RECONSTRUCTIONS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda channels: nn.Identity(),
    "crb": CRB,
}
