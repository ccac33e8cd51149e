"""Low-light super-resolution models whose blocks are searchable cells and whose parts are choices.

- ``trico_llsr`` (TriCo Eq. 1): illumination regulator -> v -> head conv -> refinement cells
  -> up-scaler; labels ``{prefix}upscaler`` plus the cell edges.
- ``collaba_llsr`` (CollaBA Sec. 3.2): illumination attention -> head conv -> per branch
  (full, 1/2, ... resolution) modulation by the attention features, then cells -> fusion ->
  up-scaler; labels ``{prefix}modulation``, ``{prefix}fusion``, ``{prefix}upscaler``.

The feature width is the space's ``cell.channels`` (so ``resize_space`` widens the whole
network). Part options take a name or a list of names; one name is a fixed part (still a
label of the genotype). ``part_choices(options)`` tells the space which labels a model adds.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.registry import MODELS
from nas_llv.space.spec import SpaceSpec
from nas_llv.space.supernet import EdgeFactory
from nas_llv.space.models.base import make_cells
from nas_llv.space.models.parts import FUSIONS, MODULATIONS, UPSCALERS, IlluminationAttention, IlluminationRegulator

SCALES = (1, 2, 4)


def part_names(model: str, key: str, value: Any, table: Mapping[str, Any]) -> tuple[str, ...]:
    """The candidate names an option gives (a name or a list); ConfigError lists the allowed ones."""
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{model}: option '{key}' must be a part name or a non-empty list of them, got {value!r}; "
                          f"allowed: {', '.join(table)}")
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ConfigError(f"{model}: unknown {key} '{unknown[0]}'; allowed: {', '.join(table)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{model}: option '{key}' repeats a candidate: {list(names)}")
    return names


def _check(model: str, scale: int, unet_depth: int, unknown: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    if unknown:
        raise ConfigError(f"{model}: unknown option(s) {', '.join(sorted(unknown))}; allowed: {', '.join(allowed)}")
    if scale not in SCALES:
        raise ConfigError(f"{model}: scale must be one of {', '.join(map(str, SCALES))}, got {scale!r}")
    if not isinstance(unet_depth, int) or unet_depth < 1:
        raise ConfigError(f"{model}: unet_depth must be an integer >= 1, got {unet_depth!r}")


def _choice(edges: EdgeFactory, label: str, names: tuple[str, ...], make: Callable[[str], nn.Module]) -> nn.Module:
    return edges.part(label, {n: partial(make, n) for n in names})


def _skip(v: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = v.shape[-2:]
    return v if scale == 1 else F.interpolate(v, size=(h * scale, w * scale), mode="bicubic", align_corners=False)


@MODELS.register("trico_llsr")
class TriCoLLSR(nn.Module):
    """TriCo: u = α·x + (1 - α), v = x / u; features of v refined by cells, then up-scaled.

    x: (N, 3, H, W) in [0, 1] -> {'x': (N, 3, sH, sW) SR output, 'v': (N, 3, H, W) brightened LR,
    'illum': u (N, 3, H, W), 'alpha': (N, a, H, W)}. With ``image_skip`` the up-scaler predicts
    a residual over bicubic(v).
    """

    OPTIONS = ("scale", "upscaler", "unet_width", "unet_depth", "alpha_channels", "image_skip", "eps")
    # ω_i of strategy hyper's S2: TriCo's illumination regulator N_ir
    illumination_modules: tuple[str, ...] = ("regulator",)

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", scale: int = 2,
                 upscaler: str | list[str] = tuple(UPSCALERS), unet_width: int = 16, unet_depth: int = 2,
                 alpha_channels: int = 3, image_skip: bool = True, eps: float = 1e-4, **unknown: Any) -> None:
        super().__init__()
        _check("trico_llsr", scale, unet_depth, unknown, self.OPTIONS)
        if alpha_channels not in (1, 3):
            raise ConfigError(f"trico_llsr: alpha_channels must be 1 or 3, got {alpha_channels!r}")
        c = space.cell.channels
        self.scale, self.image_skip = scale, image_skip
        self.regulator = IlluminationRegulator(unet_width, unet_depth, alpha_channels, eps)
        self.head = nn.Conv2d(3, c, 3, padding=1)
        self.blocks = make_cells(space, edges, prefix)
        self.upscaler = _choice(edges, f"{prefix}upscaler", self.part_choices({"upscaler": upscaler})["upscaler"],
                                lambda n: UPSCALERS[n](c, scale, 3))

    @staticmethod
    def part_choices(options: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """Part label (unprefixed) -> candidates, from the model options of a space."""
        return {"upscaler": part_names("trico_llsr", "upscaler", options.get("upscaler", tuple(UPSCALERS)), UPSCALERS)}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, u, v = self.regulator(x)
        feat = self.head(v)
        refined = feat
        for block in self.blocks:
            refined = block(refined)
        out = self.upscaler(refined + feat)
        if self.image_skip:
            out = out + _skip(v, self.scale)
        return {"x": out, "v": v, "illum": u, "alpha": alpha}


@MODELS.register("collaba_llsr")
class CollaBALLSR(nn.Module):
    """CollaBA: attention prior modulates multi-scale branches of cells, fused, then up-scaled.

    Branch k works at 1/2^k resolution (stride-2 convs down, bilinear back up); every branch's
    modulation and cells share one architecture (CollaBA shares its CRBs across scales), each
    with its own weights.
    x: (N, 3, H, W) in [0, 1] -> {'x': (N, 3, sH, sW), 'v': (N, 3, H, W) = x / (1 - illum)
    clamped, 'illum': x^Att (N, 1, H, W) in (0, 1)}.
    """

    OPTIONS = ("scale", "modulation", "fusion", "upscaler", "branches", "unet_width", "unet_depth", "image_skip")
    # ω_i of strategy hyper's S2: the attention U-Net (the generative prior x^Att; its feature conv
    # ``prior`` feeds the SR branches, so it stays in ω_s)
    illumination_modules: tuple[str, ...] = ("attention",)

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", scale: int = 2,
                 modulation: str | list[str] = tuple(MODULATIONS), fusion: str | list[str] = tuple(FUSIONS),
                 upscaler: str | list[str] = tuple(UPSCALERS), branches: int = 2, unet_width: int = 16,
                 unet_depth: int = 2, image_skip: bool = True, **unknown: Any) -> None:
        super().__init__()
        _check("collaba_llsr", scale, unet_depth, unknown, self.OPTIONS)
        if not isinstance(branches, int) or not 1 <= branches <= 3:
            raise ConfigError(f"collaba_llsr: branches must be 1, 2 or 3 (full, 1/2, 1/4 resolution), got {branches!r}")
        c = space.cell.channels
        parts = self.part_choices({"modulation": modulation, "fusion": fusion, "upscaler": upscaler})
        self.scale, self.image_skip = scale, image_skip
        self.attention = IlluminationAttention(unet_width, unet_depth)
        self.head = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.LeakyReLU(0.2))
        self.prior = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for _ in range(branches - 1))
        self.modulate = nn.ModuleList(_choice(edges, f"{prefix}modulation", parts["modulation"],
                                              lambda n: MODULATIONS[n](c, c)) for _ in range(branches))
        self.branches = nn.ModuleList(make_cells(space, edges, prefix) for _ in range(branches))
        self.fusion = _choice(edges, f"{prefix}fusion", parts["fusion"], lambda n: FUSIONS[n](c, branches))
        self.upscaler = _choice(edges, f"{prefix}upscaler", parts["upscaler"], lambda n: UPSCALERS[n](c, scale, 3))

    @staticmethod
    def part_choices(options: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """Part label (unprefixed) -> candidates, from the model options of a space."""
        tables = {"modulation": MODULATIONS, "fusion": FUSIONS, "upscaler": UPSCALERS}
        return {k: part_names("collaba_llsr", k, options.get(k, tuple(t)), t) for k, t in tables.items()}

    def _branch(self, k: int, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        prior = F.interpolate(prior, size=feat.shape[-2:], mode="bilinear", align_corners=False) if k else prior
        y = self.modulate[k](feat, prior)
        for cell in self.branches[k]:
            y = cell(y)
        return y

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        att = self.attention(x)
        v = self.attention.brighten(x, att)
        feat, prior = self.head(x), self.prior(att)
        size = feat.shape[-2:]
        outs, scaled = [], feat
        for k in range(len(self.branches)):
            if k:
                scaled = self.down[k - 1](scaled)
            y = self._branch(k, scaled, prior)
            outs.append(y if k == 0 else F.interpolate(y, size=size, mode="bilinear", align_corners=False))
        out = self.upscaler(self.fusion(*outs) + feat)
        if self.image_skip:
            out = out + _skip(v, self.scale)
        return {"x": out, "v": v, "illum": att}
