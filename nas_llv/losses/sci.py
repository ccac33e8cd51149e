"""SCI's self-calibration (Ma et al., CVPR 2022, "Toward Fast, Flexible, and Robust Low-Light
Image Enhancement") as a training regulariser of an illumination network F, without ground truth.

Our reading of SCI's public code (``model.py``: ``Network``, ``CalibrateNetwork``,
``LossFunction``), not a copy of it. The stages share F; y is the low-light input:

    v^0 = y;   i^k = F(v^k);   r^k = clamp(y / i^k, 0, 1);   v^{k+1} = y + s^k,
    s^k = K(r^k) = r^k - sigmoid(net(r^k))         (the calibration module K)
    loss = sum_k  fidelity * mean (i^k - v^k)^2 + eta * S(v^k, i^k)

S the edge-aware smoothness of RUAS's public training code (``ruas_code_smoothness`` with its
YCbCr guide; SCI's ``SmoothLoss`` is that code), fidelity 1.5 and eta 1 as in SCI's loss. K is
3 -> ``width`` conv-BN-ReLU, ``blocks`` residual blocks of two conv-BN-ReLU, ``width`` -> 3 conv
and a sigmoid. SCI's code appends one block module ``blocks`` times, so the blocks share weights
(``share_blocks: true``, as there). Weights start as SCI's ``weights_init``: convs N(0, 0.02),
batch-norm scales N(1, 0.02), biases 0. At inference only F runs, on y (stage 0): K only shapes F's training.

The loss reads ``t`` (i^0 = F(y), the network's own forward), ``y`` and ``illuminate``, a
function v -> F(v)'s illumination that the network supplies to its ``calibrate`` objective entry
(RUAS: the whole scene module's t; ``space/models/networks.py``). K's weights are the loss's own
and trained with the network's (``trained_parameters``); the network's model file never holds them.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from nas_llv.config import ConfigError
from nas_llv.losses.base import Loss, Tensors, check_positive, fetch, register
from nas_llv.losses.ruas import ruas_code_smoothness


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


class CalibrationNet(nn.Module):
    """SCI's calibration module K: r -> s = r - sigmoid(net(r)); r: (N, 3, H, W) in [0, 1],
    s: same shape, in (r - 1, r), so y + s lies in (y - 1, y + 1)."""

    def __init__(self, width: int = 16, blocks: int = 3, share_blocks: bool = True) -> None:
        super().__init__()
        self.in_conv = nn.Sequential(*_conv_bn_relu(3, width))
        make = lambda: nn.Sequential(*_conv_bn_relu(width, width), *_conv_bn_relu(width, width))  # noqa: E731
        shared = make()
        self.blocks = nn.ModuleList([shared if share_blocks else make() for _ in range(blocks)])
        self.out_conv = nn.Sequential(nn.Conv2d(width, 3, 3, padding=1), nn.Sigmoid())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        fea = self.in_conv(r)
        for block in self.blocks:
            fea = fea + block(fea)
        return r - self.out_conv(fea)


@register("sci_calibration")
class SCICalibrationLoss(Loss):
    """SCI's stage sum over ``stages`` (>= 2) uses of F, the later ones on calibrated inputs; scalar.

    Reads ``t`` (F(y)), ``y`` and ``illuminate`` (v -> F(v)); objective entry ``calibrate`` on RUAS.
    """

    needs = ("t", "y", "illuminate")

    def __init__(self, stages: int = 3, fidelity: float = 1.5, eta: float = 1.0, width: int = 16,
                 blocks: int = 3, share_blocks: bool = True, code_sigma: float = 0.1) -> None:
        super().__init__()
        if not isinstance(stages, int) or isinstance(stages, bool) or stages < 2:
            raise ConfigError(f"loss '{self.loss_name}': stages must be an integer >= 2 (stage 0 is F on y, "
                              f"the later ones calibrate), got {stages!r}")
        for option, value in (("fidelity", fidelity), ("eta", eta)):
            check_positive(self.loss_name, option, value, allow_zero=True)
        for option, value in (("width", width), ("blocks", blocks), ("code_sigma", code_sigma)):
            check_positive(self.loss_name, option, value)
        self.stages, self.fidelity, self.eta, self.code_sigma = stages, float(fidelity), float(eta), float(code_sigma)
        self.calibrator = CalibrationNet(int(width), int(blocks), bool(share_blocks))

    def trained_parameters(self) -> list[nn.Parameter]:
        """K's weights: trained with the network's, by the same optimizer."""
        return list(self.calibrator.parameters())

    def forward(self, out: Tensors, batch: Tensors) -> torch.Tensor:
        t, y, illuminate = (fetch(out, batch, k, self.loss_name) for k in self.needs)
        if not callable(illuminate):
            raise ConfigError(f"loss '{self.loss_name}': 'illuminate' must be the network's function v -> F(v); "
                              f"use it as the objective entry 'calibrate' of a RUAS network")
        with torch.autocast(y.device.type, enabled=False):
            return self.compute(t.float(), y.float(), illuminate)

    def stage_loss(self, i: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """One stage's ``fidelity * mean (i - v)^2 + eta * S(v, i)``."""
        return self.fidelity * (i - v).square().mean() + self.eta * ruas_code_smoothness(v, i, self.code_sigma, "ycbcr")

    def compute(self, t: torch.Tensor, y: torch.Tensor, illuminate: Callable[[torch.Tensor], Any]) -> torch.Tensor:
        i, v = t, y
        total = self.stage_loss(i, v)
        for _ in range(1, self.stages):
            v = y + self.calibrator((y / i).clamp(0.0, 1.0))
            i = illuminate(v).float()
            total = total + self.stage_loss(i, v)
        return total

    def extra_repr(self) -> str:
        return f"stages={self.stages}, fidelity={self.fidelity}, eta={self.eta}"


__all__ = ["CalibrationNet", "SCICalibrationLoss"]
