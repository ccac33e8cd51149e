"""Frozen semantic backbones for TriCo's IHEM: SAM's image encoder when it is on disk, else a stand-in.

TriCo feeds v into a frozen Segment Anything (SAM) image encoder. nas-llv never downloads weights:

- ``sam_vit_b``: the ``segment_anything`` package's ViT-B image encoder, with weights read from the
  torch hub cache (``torch.hub.get_dir()/checkpoints/sam_vit_b_01ec64.pth``) only when that file and
  the package are both there. v is resized to 1024², normalised with SAM's pixel mean and std; the
  encoder's neck output (256 channels, 64²) is resized back to the input size.
- ``local``: a **stand-in, not SAM**: a fixed filter bank (no learned weights) on v at scales 1, 1/2
  and 1/4: the three colours, and the luminance's Sobel x, Sobel y and Laplacian responses,
  bilinearly resized back: 18 channels of colour and edge structure. Its features carry no
  semantics; a network trained with it is a TriCo without SAM's prior.
- ``auto``: ``sam_vit_b`` when available, else ``local`` with one warning line saying so.

Every backbone maps v: (N, 3, H, W) in [0, 1] -> (N, out_channels, H, W), has no trainable
parameters, and is kept outside the model's module tree (not in its state dict or optimizers).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

SAM_CHECKPOINT = "sam_vit_b_01ec64.pth"
SEMANTIC_BACKBONES = ("auto", "sam_vit_b", "local")
# model state-dict tag of the backbone a network was built with (auto resolves to one of these)
BACKBONE_IDS = {"local": 0, "sam_vit_b": 1}
_WARNED: set[str] = set()


def sam_checkpoint_path() -> Path:
    """Where SAM ViT-B's weights are looked for: the torch hub cache, as torch.hub would store them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / SAM_CHECKPOINT


class LocalStandIn(nn.Module):
    """Fixed colour + edge filter bank at scales 1, 1/2, 1/4 (a stand-in, not SAM). v -> (N, 18, H, W)."""

    SCALES = (1, 2, 4)
    out_channels = 6 * len(SCALES)

    def __init__(self) -> None:
        super().__init__()
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
        laplace = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 4
        self.register_buffer("filters", torch.stack([sobel, sobel.t(), laplace]).unsqueeze(1), persistent=False)
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1), persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        size, outs = v.shape[-2:], []
        for s in self.SCALES:
            x = F.avg_pool2d(v, s, ceil_mode=True) if s > 1 else v
            y = (x * self.luma).sum(1, keepdim=True)
            edges = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), self.filters)
            f = torch.cat([x, edges], dim=1)
            outs.append(F.interpolate(f, size=size, mode="bilinear", align_corners=False) if s > 1 else f)
        return torch.cat(outs, dim=1)


class SAMEncoder(nn.Module):
    """SAM ViT-B image encoder (frozen). v (N, 3, H, W) in [0, 1] -> (N, 256, H, W)."""

    out_channels = 256

    def __init__(self, path: Path) -> None:
        super().__init__()
        from segment_anything import sam_model_registry  # optional dependency, present only with SAM

        self.encoder = sam_model_registry["vit_b"](checkpoint=str(path)).image_encoder
        self.register_buffer("mean", torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1) / 255, persistent=False)
        self.register_buffer("std", torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1) / 255, persistent=False)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        size = self.encoder.img_size
        x = F.interpolate((v - self.mean) / self.std, size=(size, size), mode="bilinear", align_corners=False)
        return F.interpolate(self.encoder(x), size=v.shape[-2:], mode="bilinear", align_corners=False)


def sam_available() -> str | None:
    """None when SAM ViT-B can be built from local files, else why not (one line)."""
    path = sam_checkpoint_path()
    if not path.is_file():
        return f"SAM ViT-B weights not found at {path}"
    try:
        import segment_anything  # noqa: F401
    except ImportError:
        return "the segment_anything package is not installed"
    return None


def build_semantic_backbone(kind: str) -> tuple[str, nn.Module]:
    """(resolved kind, frozen backbone in eval mode) for ``auto``, ``sam_vit_b`` or ``local``."""
    if kind not in SEMANTIC_BACKBONES:
        raise ValueError(f"unknown semantic backbone {kind!r}; allowed: {', '.join(SEMANTIC_BACKBONES)}")
    if kind != "local":
        missing = sam_available()
        if missing is None:
            kind, net = "sam_vit_b", SAMEncoder(sam_checkpoint_path())
        elif kind == "sam_vit_b":
            raise FileNotFoundError(f"IHEM semantic backbone sam_vit_b: {missing}")
        else:
            if missing not in _WARNED:  # one line per process, not one per network built
                _WARNED.add(missing)
                logger.warning("IHEM: %s; using the local stand-in filter bank (not SAM features)", missing)
            kind, net = "local", LocalStandIn()
    else:
        net = LocalStandIn()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return kind, net
