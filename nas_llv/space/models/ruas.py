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
from nas_llv.space.bandconv import eager_cpu
from nas_llv.space.supernet import ABSENT, EdgeFactory, MixedGate
from nas_llv.space.models.base import make_cells, part_names


PRESENCE = {ABSENT: "no denoiser: x = u", "denoiser": "x = u - head(cells(stem(u)))"}


def local_max(x: torch.Tensor, window: int = 2) -> torch.Tensor:
    """Max over a ``window`` x ``window`` neighbour (zero-padded bottom/right), same size:
    ``max_pool2d(pad(x), window, stride=1)``, whose values and gradient it gives bit for bit.

    On CPU in eager mode (``bandconv.eager_cpu``) it is the shifted views' maximum (``shifted_max``),
    and ``_LocalMax`` where a gradient is wanted: torch's CPU max-pool kernel takes 3.4 ms for one
    3x320x320 map at stride 1, the shifted views 0.1-0.2 ms (benchmarks/README.md)."""
    if eager_cpu(x):
        return _LocalMax.apply(x, window) if torch.is_grad_enabled() and x.requires_grad else shifted_max(x, window)
    return F.max_pool2d(F.pad(x, (0, window - 1, 0, window - 1)), window, stride=1)


def shifted_max(x: torch.Tensor, window: int = 2) -> torch.Tensor:
    """``local_max``'s values as the maximum of window² shifted views of the padded image.

    The views end at negative offsets rather than at sizes read from ``x``, so a traced export stays
    right at every input size."""
    return _shifted(F.pad(x, (0, window - 1, 0, window - 1)), window)


def _shifted(p: torch.Tensor, window: int) -> torch.Tensor:
    """The maximum of the window² shifted views of the padded map ``p``."""
    out = None
    for i in range(window):
        for j in range(window):
            out = _view(p, window, i, j) if out is None else torch.maximum(out, _view(p, window, i, j))
    return out


def _view(p: torch.Tensor, window: int, i: int, j: int) -> torch.Tensor:
    """The padded map ``p`` seen from window offset (i, j): each window's (i, j) element."""
    return p[..., i:(i - window + 1) or None, j:(j - window + 1) or None]


def _first_max(p: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows' maxima over the padded map ``p`` and the max-pool's index of each (int64, into
    ``p``'s plane): the first maximum in scan order, found row by row, then among the rows' maxima
    (the same position). The offsets are blended by float32 arithmetic (exact: they are small
    integers); ``torch.where`` and integer maps measured 2-4x slower here."""
    width = p.shape[-1]
    best = at = None
    for i in range(window):
        row = _view(p, window, i, 0)
        col = None
        for j in range(1, window):
            view = _view(p, window, i, j)
            later = torch.gt(view, row).to(torch.float32)  # strictly: on a tie the earlier one stays
            row = torch.maximum(row, view)
            col = later * j if col is None else col + later * (j - col)
        col = col + i * width if col is not None else torch.full_like(row, i * width, dtype=torch.float32)
        if best is None:
            best, at = row, col
        else:
            later = torch.gt(row, best).to(torch.float32)
            best = torch.maximum(best, row)
            at = at + later * (col - at)
    h, w = best.shape[-2:]
    base = (torch.arange(h, device=p.device) * width).unsqueeze(1) + torch.arange(w, device=p.device)
    return best, base + at.long()


class _LocalMax(torch.autograd.Function):
    """``local_max`` where a gradient is wanted: the shifted views' forward and the max-pool's own backward
    (``max_pool2d_with_indices_backward``) on the indices the max-pool would have chosen: in each
    window the first maximum in scan order (row by row). A window holding a NaN gives NaN, as the
    max-pool does, but may route its gradient elsewhere than the max-pool's NaN position; a search
    stops at a non-finite loss before that gradient is used. It works in NCHW whatever ``x``'s
    format (the index arithmetic measured 3x slower in channels-last, over 3 channels) and gives
    ``x``'s format back. The backward is made of differentiable ops, so a second-order method
    differentiates through it."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, window: int) -> torch.Tensor:
        fmt = torch.channels_last if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        p = F.pad(x.contiguous(), (0, window - 1, 0, window - 1))
        y, indices = _first_max(p, window)
        ctx.save_for_backward(p, indices)
        ctx.window, ctx.fmt = window, fmt
        return y.contiguous(memory_format=fmt)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        p, indices = ctx.saved_tensors
        k = ctx.window
        gp = torch.ops.aten.max_pool2d_with_indices_backward(grad.contiguous(), p, [k, k], [1, 1], [0, 0], [1, 1],
                                                             False, indices)
        h, w = indices.shape[-2:]
        return gp[..., :h, :w].contiguous(memory_format=ctx.fmt), None


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
