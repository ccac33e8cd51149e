"""RUAS (Liu et al., TPAMI): the unrolled scene (illumination) module, the denoising task
module, the noise-estimation gate of RUAS_A, and the composite network.

Defaults follow the public code where the paper and the code differ (the published
weights were trained that way); the paper's reading is an option:
- rectification ``rectify_from='u'`` (code: t̂ = maxpool2x2(u) - γ(u - y)); ``'t'`` is the
  paper's Eq. (4), t̂ = maxpool(t) - γ(u - y). Stage 0 uses t̂ = maxpool(y) in both.
- the 2x2 max window pads one zero row and column at the bottom and right, as the code does.
- a residual node adds its input after the edge op, so a residual op on an r-edge gives
  op(x) + 2x — the public cell computes exactly this.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.registry import MODELS
from nas_llv.space.spec import SpaceSpec
from nas_llv.space.supernet import ABSENT, EdgeFactory, MixedGate
from nas_llv.space.models.base import make_cells, part_names


PRESENCE = {ABSENT: "no denoiser: x = u", "denoiser": "x = u - head(cells(stem(u)))"}


def local_max(x: torch.Tensor, window: int = 2) -> torch.Tensor:
    """Max over a ``window`` x ``window`` neighbour (zero-padded bottom/right), same size."""
    return F.max_pool2d(F.pad(x, (0, window - 1, 0, window - 1)), window, stride=1)


@MODELS.register("ruas_scene")
class SceneModule(nn.Module):
    """K unrolled illumination-estimation stages (RUAS Eq. 3-4), one cell per stage.

    y: (N, 3, H, W) in [0, 1] -> {'u': enhanced, 't': illumination in [t_min, 1],
    'us': [u^1..u^K], 'ts': [t^1..t^K]}.
    """

    #: the local maximum (``space.fold`` swaps in one that gives the same values faster)
    pool = staticmethod(local_max)

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", gamma: float = 0.5,
                 t_min: float = 1e-4, window: int = 2, rectify_from: Literal["u", "t"] = "u") -> None:
        super().__init__()
        if space.cell.channels != 3:
            raise ConfigError(f"space '{space.name}': the scene module works on the RGB image itself, so "
                              f"cell.channels must be 3, got {space.cell.channels}")
        if not 0 < gamma <= 1 or rectify_from not in ("u", "t"):
            raise ConfigError(f"ruas_scene: need 0 < gamma <= 1 and rectify_from in (u, t); got {gamma}, {rectify_from!r}")
        self.gamma, self.t_min, self.window, self.rectify_from = gamma, t_min, window, rectify_from
        self.stages = make_cells(space, edges, prefix)

    def forward(self, y: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        us, ts = [], []
        u = t = y
        for k, cell in enumerate(self.stages):
            if k == 0:
                t_hat = self.pool(y, self.window)
            else:
                src = u if self.rectify_from == "u" else t
                t_hat = self.pool(src, self.window) - self.gamma * (u - y)
            t = torch.clamp(torch.sigmoid(cell(t_hat)), self.t_min, 1.0)
            u = torch.clamp(y / t, 0.0, 1.0)
            us.append(u)
            ts.append(t)
        return {"u": u, "t": t, "us": us, "ts": ts}


@MODELS.register("ruas_denoise")
class DenoiseModule(nn.Module):
    """x = u - head(cells(stem(u))): a 3x3 stem to C channels, the cells, a 3x3 head back to 3.

    u: (N, 3, H, W) -> (N, 3, H, W). ``presence`` (a part label, e.g. ``[none, denoiser]``, given
    by the space ``ruas_denoise_capacity``): the denoiser's presence is a choice. In the supernet
    x = u - w_denoiser · head(...), and the cost table scales the whole module's cost by
    w_denoiser; a derived network that chose ``none`` has no stem, cells or head: x = u.
    """

    def __init__(self, space: SpaceSpec, edges: EdgeFactory, prefix: str = "", image_channels: int = 3,
                 presence: str | list[str] | None = None) -> None:
        super().__init__()
        self.gate = None
        if presence is not None:
            self.gate = edges.gate(f"{prefix}presence", self.part_choices({"presence": presence})["presence"])
            if self.gate is None:  # the genotype drops the denoiser
                self.stem = self.blocks = self.head = None
                return
        c = space.cell.channels
        self.stem = nn.Conv2d(image_channels, c, 3, padding=1)
        self.blocks = make_cells(space, edges, prefix)
        self.head = nn.Conv2d(c, image_channels, 3, padding=1)
        if isinstance(self.gate, MixedGate):
            self.gate.cover(self.stem, *self.blocks, self.head)

    @staticmethod
    def part_choices(options: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        """``presence`` (none, denoiser) when the space gives it: spaces and genotypes without it
        keep their network."""
        if options.get("presence") is None:
            return {}
        return {"presence": part_names("ruas_denoise", "presence", options["presence"], PRESENCE)}

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.stem is None or (isinstance(self.gate, MixedGate) and self.gate.absent):
            return u
        feat = self.stem(u)
        for block in self.blocks:
            feat = block(feat)
        residual = self.head(feat)
        return u - (residual if self.gate is None else self.gate(residual))


class NoiseEstimator(nn.Module):
    """Ψ_e of RUAS_A: five 3x3 convs 3->w->w->w->w->3 with ReLU between (w=32 in TPAMI).

    ``forward(u)`` = θ, the noise map: (N, 3, H, W); ``level(u)`` = Σ|θ| / (C·H·W) per image: (N,),
    the quantity RUAS_A's gate compares with its threshold. Trained (``nas-llv train`` with an
    ``estimator`` objective entry, loss ``noise_level``, ``nas_llv.losses.noise``), |θ| regresses the
    local absolute noise, so ``level`` estimates the image's mean absolute noise (≈ 0.8σ for
    Gaussian noise of std σ).
    """

    def __init__(self, width: int = 32, channels: int = 3) -> None:
        super().__init__()
        dims = [channels, width, width, width, width, channels]
        layers: list[nn.Module] = []
        for i in range(5):
            layers.append(nn.Conv2d(dims[i], dims[i + 1], 3, padding=1))
            if i < 4:
                layers.append(nn.ReLU())
        self.estimation = nn.Sequential(*layers)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.estimation(u)

    def level(self, u: torch.Tensor) -> torch.Tensor:
        return self.estimation(u).abs().flatten(1).mean(1)
