"""Candidate parts of the low-light super-resolution networks (TriCo, CollaBA).

Each part is an ``nn.Module`` with a documented shape contract; parts of one kind share it,
so a ``MixedPart`` can weight them by softmax(α). The part tables at the bottom map a name to
a factory with one signature per kind:

- ``MODULATIONS[name](channels, prior_channels)``: (feat (N,C,H,W), prior (N,P,H,W)) -> (N,C,H,W)
- ``FUSIONS[name](channels, branches)``: B tensors (N,C,H,W) -> (N,C,H,W)
- ``UPSCALERS[name](channels, scale, out_channels)``: (N,C,H,W) -> (N,out,sH,sW)

CollaBA's stem and reconstruction block are in ``collaba_parts.py``; TriCo's dynamic-grid
up-sampler (an entry here) and IHEM in ``trico_parts.py``.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.space.models.trico_parts import DynamicGridUp


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=bias)


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class UNet(nn.Module):
    """A small U-Net: ``depth`` max-pool levels, widths width·2^k, bilinear up + skip concat.

    x: (N, in, H, W), any H, W (replicate-padded to a multiple of 2^depth, cropped back)
    -> (N, out, H, W) unbounded logits.
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, depth: int = 2) -> None:
        super().__init__()
        self.depth = depth
        widths = [width * 2 ** k for k in range(depth + 1)]
        self.enc = nn.ModuleList(self._block(c_in, c) for c_in, c in zip([in_channels] + widths, widths))
        self.dec = nn.ModuleList(self._block(widths[k + 1] + widths[k], widths[k]) for k in range(depth))
        self.head = _conv(width, out_channels, 1)

    @staticmethod
    def _block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(_conv(cin, cout), nn.LeakyReLU(0.2), _conv(cout, cout), nn.LeakyReLU(0.2))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last decoder level before the head: (N, in, H, W) -> (N, width, H', W'), H' = H
        rounded up to a multiple of 2^depth (crop ``[..., :H, :W]`` to align with x)."""
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        skips = []
        for k, block in enumerate(self.enc):
            x = block(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for k in reversed(range(self.depth)):
            x = self.dec[k](torch.cat([_resize(x, skips[k].shape[-2:]), skips[k]], 1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return self.head(self.features(x))[..., :h, :w]


class IlluminationRegulator(nn.Module):
    """TriCo N_ir (Eq. 1): a U-Net gives α in (0, 1) per pixel, β = 1 - α, u = α·x + β,
    v = x / u clamped to [0, 1].

    x: (N, 3, H, W) in [0, 1] -> (alpha (N, a, H, W), u (N, 3, H, W) in [x, 1], v (N, 3, H, W)),
    a = ``alpha_channels`` (1: one factor for all colours, 3: one per colour).
    """

    def __init__(self, width: int = 16, depth: int = 2, alpha_channels: int = 3, eps: float = 1e-4) -> None:
        super().__init__()
        self.net = UNet(3, alpha_channels, width, depth)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.regulate(x)[:3]

    def regulate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(alpha, u, v) as ``forward``, plus the U-Net's last decoder features (N, width, H, W),
        TriCo's illumination features f_i for IHEM."""
        h, w = x.shape[-2:]
        feat = self.net.features(x)
        alpha = torch.sigmoid(self.net.head(feat)[..., :h, :w])
        u = alpha * x + (1 - alpha)
        v = torch.clamp(x / u.clamp_min(self.eps), 0.0, 1.0)
        return alpha, u, v, feat[..., :h, :w]


class IlluminationAttention(nn.Module):
    """CollaBA's generative modulation prior: x^Att = UNet(x), squashed to (0, 1).

    Supervised by the max-channel prior |max_c x - max_c y| / max_c y (Eq. 4, 7), which is
    1 - max_c x / max_c y for a darker input, so ``brighten`` divides by 1 - x^Att.
    x: (N, 3, H, W) in [0, 1] -> (N, 1, H, W) in (0, 1).
    """

    def __init__(self, width: int = 16, depth: int = 2, eps: float = 1e-3) -> None:
        super().__init__()
        self.net = UNet(3, 1, width, depth)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x))

    def brighten(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        """x / (1 - att), clamped to [0, 1]: the image whose channel max the prior predicts."""
        return torch.clamp(x / (1 - att).clamp_min(self.eps), 0.0, 1.0)


class CFT(nn.Module):
    """Conditional feature transform, CollaBA Eq. (1): Conv(B) ⊙ w_α + w_β, (w_α, w_β) = Conv(A).

    w_α is parameterised as 1 + γ (SFT style), the same function class, starting near Conv(B).
    feat: (N, C, H, W), prior: (N, P, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, prior_channels: int) -> None:
        super().__init__()
        self.conv = _conv(channels, channels)
        self.affine = _conv(prior_channels, 2 * channels)

    def forward(self, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(prior).chunk(2, dim=1)
        return self.conv(feat) * (1 + gamma) + beta


class DCFT(nn.Module):
    """Channel-decoupled CFT, CollaBA Eq. (2): Concat[B_0, CFT(B_1)], [B_0, B_1] = Split(B).

    The first ⌊C/2⌋ channels pass unchanged. feat: (N, C, H, W), prior: (N, P, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, prior_channels: int) -> None:
        super().__init__()
        self.keep = channels // 2
        self.cft = CFT(channels - self.keep, prior_channels)

    def forward(self, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        kept, moved = feat[:, :self.keep], feat[:, self.keep:]
        return torch.cat([kept, self.cft(moved, prior)], dim=1)


class ConcatModulation(nn.Module):
    """The ablation of CollaBA Table 5 (No. 3): conv1x1(Concat[B, A]).

    feat: (N, C, H, W), prior: (N, P, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, prior_channels: int) -> None:
        super().__init__()
        self.fuse = _conv(channels + prior_channels, channels, 1)

    def forward(self, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([feat, prior], dim=1))


class SKFF(nn.Module):
    """Selective kernel feature fusion (MIRNet): GAP(Σ L_i) -> squeeze -> per-branch logits,
    softmax over branches, Σ_i a_i ⊙ L_i.

    B tensors (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, branches: int, reduction: int = 8) -> None:
        super().__init__()
        d = max(channels // reduction, 4)
        self.squeeze = nn.Sequential(_conv(channels, d, 1, bias=False), nn.PReLU())
        self.select = nn.ModuleList(_conv(d, channels, 1, bias=False) for _ in range(branches))

    def forward(self, *feats: torch.Tensor) -> torch.Tensor:
        if len(feats) != len(self.select):
            raise ValueError(f"SKFF was built for {len(self.select)} branches, got {len(feats)}")
        z = self.squeeze(sum(feats).mean(dim=(2, 3), keepdim=True))
        att = torch.stack([s(z) for s in self.select], dim=1).softmax(dim=1)  # (N, B, C, 1, 1)
        return (att * torch.stack(feats, dim=1)).sum(dim=1)


class SumFusion(nn.Module):
    """Σ_i L_i. B tensors (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, branches: int) -> None:
        super().__init__()

    def forward(self, *feats: torch.Tensor) -> torch.Tensor:
        return sum(feats)


class PixelShuffleUp(nn.Module):
    """3x3 conv to out·s² channels, then PixelShuffle(s). (N, C, H, W) -> (N, out, sH, sW)."""

    def __init__(self, channels: int, scale: int, out_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, out_channels * scale ** 2), nn.PixelShuffle(scale))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.body(feat)


class InterpConv(nn.Module):
    """Interpolate by s (``mode`` bilinear or bicubic), then a 3x3 conv. (N, C, H, W) -> (N, out, sH, sW)."""

    def __init__(self, channels: int, scale: int, out_channels: int = 3, mode: str = "bilinear") -> None:
        super().__init__()
        self.scale, self.mode = scale, mode
        self.conv = _conv(channels, out_channels)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        h, w = feat.shape[-2:]
        return self.conv(_resize(feat, (h * self.scale, w * self.scale), self.mode))


def _ps2(channels: int) -> nn.Sequential:
    return nn.Sequential(_conv(channels, 4 * channels), nn.PixelShuffle(2))


def _down(channels: int, factor: int) -> nn.Sequential:
    return nn.Sequential(*[_conv(channels, channels, stride=2) for _ in range(int(math.log2(factor)))])


class MSMU(nn.Module):
    """Multi-substrate merging up-scaler, CollaBA Sec. 3.2.4 (Eq. 5-6, Fig. 5).

    1. substrates τ_1 = C, τ_2 = PS(C), τ_4 = PS(PS(C)) (each PS a 3x3 conv to 4C + PixelShuffle(2));
    2. dynamic aggregation: each level o gathers every τ_i, as is (i = o), bilinearly enlarged
       (i < o) or by stride-2 convolutions (i > o), merged by a 1x1 conv;
    3. bicubic resizing of each level to the output size, concat, 1x1 conv to the output.
    (N, C, H, W) -> (N, out, sH, sW).
    """

    LEVELS = (1, 2, 4)

    def __init__(self, channels: int, scale: int, out_channels: int = 3) -> None:
        super().__init__()
        self.scale = scale
        self.ps = nn.ModuleList([_ps2(channels), _ps2(channels)])
        self.down = nn.ModuleDict({f"{i}to{o}": _down(channels, i // o)
                                   for o in self.LEVELS for i in self.LEVELS if i > o})
        n = len(self.LEVELS)
        self.merge = nn.ModuleList(_conv(n * channels, channels, 1) for _ in self.LEVELS)
        self.out = _conv(n * channels, out_channels, 1)

    def _aggregate(self, subs: dict[int, torch.Tensor], o: int) -> torch.Tensor:
        parts = []
        for i, t in subs.items():
            if i < o:
                t = _resize(t, subs[o].shape[-2:], "bilinear")
            elif i > o:
                t = self.down[f"{i}to{o}"](t)
            parts.append(t)
        return self.merge[self.LEVELS.index(o)](torch.cat(parts, dim=1))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        h, w = feat.shape[-2:]
        t2 = self.ps[0](feat)
        subs = {1: feat, 2: t2, 4: self.ps[1](t2)}
        levels = [self._aggregate(subs, o) for o in self.LEVELS]
        size = (h * self.scale, w * self.scale)
        return self.out(torch.cat([_resize(t, size, "bicubic") for t in levels], dim=1))


MODULATIONS: dict[str, Callable[[int, int], nn.Module]] = {
    "cft": CFT,
    "dcft": DCFT,
    "concat": ConcatModulation,
}
FUSIONS: dict[str, Callable[[int, int], nn.Module]] = {
    "skff": SKFF,
    "sum": SumFusion,
}
UPSCALERS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "pixelshuffle": PixelShuffleUp,
    "bilinear_conv": lambda c, s, out=3: InterpConv(c, s, out, "bilinear"),
    "bicubic_conv": lambda c, s, out=3: InterpConv(c, s, out, "bicubic"),
    "msmu": MSMU,
    "dynamic_grid": DynamicGridUp,  # TriCo's dynamic-grid up-sampler (trico_parts.py)
}
