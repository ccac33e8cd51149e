"""TriCo's dynamic-grid up-sampler and its Integrated Hybrid Expert Modulator (IHEM).

- ``DynamicGridUp(channels, scale, out)``: (N, C, H, W) -> (N, out, sH, sW), an entry of
  ``parts.UPSCALERS`` (``dynamic_grid``).
- ``IHEMS[name](channels, sem_channels, illum_channels)``: (feat (N, C, H, W), sem (N, S, H, W),
  illum (N, I, H, W)) -> (N, C, H, W); ``none`` returns feat.

Readings of TriCo (Sec. 3.1, Eq. 2-3, Fig. 3) where the paper leaves a choice open:

- **Dynamic grid up-sampling.** TriCo cites [7] (affinity-aware upsampling) and gives no formula;
  we implement "a learned sampling grid": the bilinear grid of an s-times enlargement plus
  per-output-pixel offsets predicted from the features (1x1 conv to 2·s² channels, PixelShuffle(s),
  bounded by ``scope``·tanh in input pixels, as DySample samples), sampled with ``grid_sample``
  (bilinear, border padding), then a 3x3 conv to the output. The offset conv starts at zero, so a
  fresh up-sampler is exactly bilinear enlargement + conv.
- **IHEM.** Two stages, each a Restormer-style "transposed" (channel) attention [46] with the query
  from a guide and key/value from the reflectance features, then Restormer's gated-dconv FFN:
  semantic stage (query from f_s, Eq. 2), illumination stage (query from f_i, Eq. 3). Each
  projection is LayerNorm (over channels) -> 1x1 conv -> 3x3 depth-wise conv; q and k are
  L2-normalised over positions, A = softmax_k(q kᵀ / τ) (C x C), τ learnable; the response is
  Conv1x1(A v) + f_r. The FFN keeps Restormer's residual (f + FFN(LN f)). The paper's ⊗ is read
  as the matrix products its shapes imply.
- **Where IHEM acts.** TriCo modulates each decoder layer of N_fr; nas-llv's N_fr is a stack of
  cells at one resolution, so one IHEM follows each cell, all fed one semantic map and the last
  decoder features of the illumination regulator's U-Net (both at H x W).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class DynamicGridUp(nn.Module):
    """Up-sampling by a learned sampling grid, then a 3x3 conv. (N, C, H, W) -> (N, out, sH, sW).

    grid = bilinear positions of an s-times enlargement + scope·tanh(PS(Conv1x1(feat))) input pixels.
    """

    def __init__(self, channels: int, scale: int, out_channels: int = 3, scope: float = 1.0) -> None:
        super().__init__()
        self.scale, self.scope = scale, scope
        self.offset = nn.Conv2d(channels, 2 * scale ** 2, 1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def grid(self, feat: torch.Tensor) -> torch.Tensor:
        """The sampling grid (N, sH, sW, 2) in grid_sample's [-1, 1] coordinates (x, y)."""
        n, _, h, w = feat.shape
        s = self.scale
        # output pixel j samples input x = (j + 0.5)/s - 0.5, normalised (2x + 1)/W - 1 = (2j + 1)/(sW) - 1
        gx = (2 * torch.arange(s * w, device=feat.device, dtype=feat.dtype) + 1) / (s * w) - 1
        gy = (2 * torch.arange(s * h, device=feat.device, dtype=feat.dtype) + 1) / (s * h) - 1
        base = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)                    # (sH, sW, 2)
        off = self.scope * torch.tanh(F.pixel_shuffle(self.offset(feat), s))               # (N, 2, sH, sW)
        off = off * torch.tensor([2.0 / w, 2.0 / h], device=feat.device, dtype=feat.dtype).view(1, 2, 1, 1)
        return base.unsqueeze(0) + off.permute(0, 2, 3, 1)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        up = F.grid_sample(feat, self.grid(feat), mode="bilinear", padding_mode="border", align_corners=False)
        return self.conv(up)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel, with a learned scale and bias. (N, C, H, W) -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _projection(cin: int, cout: int) -> nn.Sequential:
    """LayerNorm -> 1x1 conv -> 3x3 depth-wise conv (TriCo Fig. 3)."""
    return nn.Sequential(LayerNorm2d(cin), nn.Conv2d(cin, cout, 1), nn.Conv2d(cout, cout, 3, padding=1, groups=cout))


class GuidedChannelAttention(nn.Module):
    """Transposed attention with a guide's query: Conv1x1(softmax(q kᵀ / τ) v) + feat (TriCo Eq. 2-3).

    feat: (N, C, H, W), guide: (N, G, H, W) -> (N, C, H, W); the attention map is (C/h x C/h) per head.
    """

    def __init__(self, channels: int, guide_channels: int, heads: int = 1) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"IHEM: channels {channels} must be divisible by heads {heads}")
        self.heads = heads
        self.query = _projection(guide_channels, channels)
        self.key_value = _projection(channels, 2 * channels)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, feat: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        n, c, h, w = feat.shape
        k, v = self.key_value(feat).chunk(2, dim=1)
        q, k, v = (t.reshape(n, self.heads, c // self.heads, h * w) for t in (self.query(guide), k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)   # (N, h, C/h, C/h)
        return self.out((attn @ v).reshape(n, c, h, w)) + feat


class GatedFFN(nn.Module):
    """Restormer's gated-dconv FFN with its residual: f + W_o(GELU(x_1) ⊙ x_2), [x_1, x_2] = DW(W_i(LN f)).

    (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = max(int(channels * expansion), 1)
        self.body = _projection(channels, 2 * hidden)
        self.out = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.body(x).chunk(2, dim=1)
        return x + self.out(F.gelu(a) * b)


class IHEM(nn.Module):
    """Integrated Hybrid Expert Modulator: semantic stage (Eq. 2) + FFN, illumination stage (Eq. 3) + FFN.

    feat: (N, C, H, W) reflectance features, sem: (N, S, H, W), illum: (N, I, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, sem_channels: int, illum_channels: int, heads: int = 1) -> None:
        super().__init__()
        self.semantic = GuidedChannelAttention(channels, sem_channels, heads)
        self.ffn_semantic = GatedFFN(channels)
        self.illumination = GuidedChannelAttention(channels, illum_channels, heads)
        self.ffn_illumination = GatedFFN(channels)

    def forward(self, feat: torch.Tensor, sem: torch.Tensor, illum: torch.Tensor) -> torch.Tensor:
        f = self.ffn_semantic(self.semantic(feat, sem))
        return self.ffn_illumination(self.illumination(f, illum))


class NoIHEM(nn.Module):
    """The ablation without IHEM (TriCo Table 3): returns feat unchanged."""

    def __init__(self, channels: int, sem_channels: int, illum_channels: int) -> None:
        super().__init__()

    def forward(self, feat: torch.Tensor, sem: torch.Tensor | None = None,
                illum: torch.Tensor | None = None) -> torch.Tensor:
        return feat


IHEMS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "none": NoIHEM,
    "ihem": IHEM,
}
