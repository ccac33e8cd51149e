"""Low-light super-resolution models whose blocks are searchable cells and whose parts are choices.

- ``trico_llsr`` (TriCo Eq. 1): illumination regulator -> v -> head conv -> refinement cells
  -> up-scaler; labels ``{prefix}upscaler`` plus the cell edges.
- ``collaba_llsr`` (CollaBA Sec. 3.2): illumination attention -> head conv -> per branch
  (full, 1/2, ... resolution) modulation by the attention features, then cells -> fusion ->
  up-scaler; labels ``{prefix}modulation``, ``{prefix}fusion``, ``{prefix}upscaler``, and when the
  space gives the option, ``{prefix}stem`` (conv or pixel-unshuffle input) and
  ``{prefix}reconstruction`` (none or the three-path CRB, ``collaba_parts.py``).

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
from nas_llv.space.models.base import make_cells, part_names
from nas_llv.space.models.collaba_parts import RECONSTRUCTIONS, STEMS, conv_stem
from nas_llv.space.models.parts import FUSIONS, MODULATIONS, UPSCALERS, IlluminationAttention, IlluminationRegulator
from nas_llv.space.models.semantic import BACKBONE_IDS, SEMANTIC_BACKBONES, build_semantic_backbone
from nas_llv.space.models.trico_parts import IHEMS, NoIHEM

SCALES = (1, 2, 4)


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
    a residual over bicubic(v). When the space gives ``ihem`` (a part label, e.g. [none, ihem]),
    each cell is followed by TriCo's IHEM (``trico_parts.py``), guided by a frozen semantic
    backbone of v (``semantic``: auto, sam_vit_b or local; ``semantic.py``) and the regulator's
    last U-Net decoder features.
    """

    OPTIONS = ("scale", "upscaler", "ihem", "semantic", "unet_width", "unet_depth", "alpha_channels",
               "image_skip", "eps")
    # ω_i of strategy hyper's S2: TriCo's illumination regulator N_ir
    illumination_modules: tuple[str, ...] = ("regulator",)

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", scale: int = 2,
                 upscaler: str | list[str] = tuple(UPSCALERS), ihem: str | list[str] | None = None,
                 semantic: str = "auto", unet_width: int = 16, unet_depth: int = 2,
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
        parts = self.part_choices({"upscaler": upscaler, **({} if ihem is None else {"ihem": ihem})})
        self.upscaler = _choice(edges, f"{prefix}upscaler", parts["upscaler"], lambda n: UPSCALERS[n](c, scale, 3))
        self.ihem = None
        object.__setattr__(self, "_semantic", None)
        if "ihem" in parts:
            self._build_ihem(edges, f"{prefix}ihem", parts["ihem"], semantic, c, unet_width)

    def _build_ihem(self, edges: EdgeFactory, label: str, names: tuple[str, ...], semantic: str,
                    c: int, illum_channels: int) -> None:
        if semantic not in SEMANTIC_BACKBONES:
            raise ConfigError(f"trico_llsr: unknown semantic '{semantic}'; allowed: {', '.join(SEMANTIC_BACKBONES)}")
        kind, backbone = build_semantic_backbone(semantic if "ihem" in names else "local")
        self.ihem = nn.ModuleList(_choice(edges, label, names, lambda n: IHEMS[n](c, backbone.out_channels,
                                                                              illum_channels))
                                  for _ in self.blocks)
        # frozen and rebuilt from local files: kept out of the module tree (state dict, optimizers)
        object.__setattr__(self, "_semantic", backbone if any(not isinstance(m, NoIHEM) for m in self.ihem) else None)
        # which backbone the weights were trained with; loading weights of the other is refused
        self.register_buffer("semantic_backbone", torch.tensor(BACKBONE_IDS[kind]))
        self._semantic_id = BACKBONE_IDS[kind]

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        tag = state_dict.get(f"{prefix}semantic_backbone")
        if self._semantic is not None and tag is not None and int(tag) != self._semantic_id:
            names = {i: k for k, i in BACKBONE_IDS.items()}
            error_msgs.append(f"trico_llsr: these weights were trained with the {names[int(tag)]} semantic "
                              f"backbone, but {names[self._semantic_id]} was built here (model option 'semantic')")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    @staticmethod
    def part_choices(options: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """Part label (unprefixed) -> candidates, from the model options of a space (``ihem`` only
        when the space gives it: spaces and genotypes written before IHEM keep their network)."""
        out = {"upscaler": part_names("trico_llsr", "upscaler", options.get("upscaler", tuple(UPSCALERS)), UPSCALERS)}
        if options.get("ihem") is not None:
            out["ihem"] = part_names("trico_llsr", "ihem", options["ihem"], IHEMS)
        return out

    def _semantics(self, v: torch.Tensor) -> torch.Tensor | None:
        if self._semantic is None:
            return None
        self._semantic.to(device=v.device, dtype=v.dtype)
        with torch.no_grad():
            return self._semantic(v)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        alpha, u, v, illum_feat = self.regulator.regulate(x)
        sem = self._semantics(v)
        feat = self.head(v)
        refined = feat
        for k, block in enumerate(self.blocks):
            refined = block(refined)
            if self.ihem is not None:
                refined = self.ihem[k](refined, sem, illum_feat)
        out = self.upscaler(refined + feat)
        if self.image_skip:
            out = out + _skip(v, self.scale)
        return {"x": out, "v": v, "illum": u, "alpha": alpha}


@MODELS.register("collaba_llsr")
class CollaBALLSR(nn.Module):
    """CollaBA: attention prior modulates multi-scale branches of cells, fused, then up-scaled.

    Branch k works at 1/2^k resolution (stride-2 convs down, bilinear back up); every branch's
    modulation and cells share one architecture (CollaBA shares its CRBs across scales), each
    with its own weights; the optional reconstruction part (one module) follows every branch's cells.
    x: (N, 3, H, W) in [0, 1] -> {'x': (N, 3, sH, sW), 'v': (N, 3, H, W) = x / (1 - illum)
    clamped, 'illum': x^Att (N, 1, H, W) in (0, 1)}.
    """

    OPTIONS = ("scale", "modulation", "fusion", "upscaler", "stem", "reconstruction", "branches", "unet_width",
               "unet_depth", "image_skip")
    # part labels a space declares only by giving the option (spaces and genotypes written before
    # these parts existed keep their network): label -> (table, the part used when undeclared)
    OPTIONAL_PARTS = {"stem": (STEMS, "conv"), "reconstruction": (RECONSTRUCTIONS, "none")}
    # ω_i of strategy hyper's S2: the attention U-Net (the generative prior x^Att; its feature conv
    # ``prior`` feeds the SR branches, so it stays in ω_s)
    illumination_modules: tuple[str, ...] = ("attention",)

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", scale: int = 2,
                 modulation: str | list[str] = tuple(MODULATIONS), fusion: str | list[str] = tuple(FUSIONS),
                 upscaler: str | list[str] = tuple(UPSCALERS), stem: str | list[str] | None = None,
                 reconstruction: str | list[str] | None = None, branches: int = 2, unet_width: int = 16,
                 unet_depth: int = 2, image_skip: bool = True, **unknown: Any) -> None:
        super().__init__()
        _check("collaba_llsr", scale, unet_depth, unknown, self.OPTIONS)
        if not isinstance(branches, int) or not 1 <= branches <= 3:
            raise ConfigError(f"collaba_llsr: branches must be 1, 2 or 3 (full, 1/2, 1/4 resolution), got {branches!r}")
        c = space.cell.channels
        given = {k: v for k, v in {"stem": stem, "reconstruction": reconstruction}.items() if v is not None}
        parts = self.part_choices({"modulation": modulation, "fusion": fusion, "upscaler": upscaler, **given})
        self.scale, self.image_skip = scale, image_skip
        self.attention = IlluminationAttention(unet_width, unet_depth)
        self.head = (_choice(edges, f"{prefix}stem", parts["stem"], lambda n: STEMS[n](c)) if "stem" in parts
                     else conv_stem(c))
        # one CRB for every branch: CollaBA shares the CRB's parameters across its scales
        self.reconstruct = (_choice(edges, f"{prefix}reconstruction", parts["reconstruction"],
                                    lambda n: RECONSTRUCTIONS[n](c)) if "reconstruction" in parts else None)
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
        out = {k: part_names("collaba_llsr", k, options.get(k, tuple(t)), t) for k, t in tables.items()}
        out.update({k: part_names("collaba_llsr", k, options[k], t)
                    for k, (t, _) in CollaBALLSR.OPTIONAL_PARTS.items() if options.get(k) is not None})
        return out

    def _branch(self, k: int, feat: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        prior = F.interpolate(prior, size=feat.shape[-2:], mode="bilinear", align_corners=False) if k else prior
        y = self.modulate[k](feat, prior)
        for cell in self.branches[k]:
            y = cell(y)
        return y if self.reconstruct is None else self.reconstruct(y)

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
