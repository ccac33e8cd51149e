"""Image-quality and cost metrics: PSNR, RMSE, SSIM, LPIPS, GT-mean, params, FLOPs, latency.

PSNR and SSIM reproduce ``skimage.metrics`` defaults (``data_range=1``, ``channel_axis=-1``) in
pure, differentiable torch; ``quantize`` reproduces saving a result as 8-bit and reading it back.
"""
from __future__ import annotations

from nas_llv.metrics.cost import count_flops, count_params, latency
from nas_llv.metrics.image import gt_mean_correct, psnr, quantize, rmse, ssim
from nas_llv.metrics.perceptual import LPIPSMetric, backbone_weights_path

__all__ = [
    "LPIPSMetric",
    "backbone_weights_path",
    "count_flops",
    "count_params",
    "gt_mean_correct",
    "latency",
    "psnr",
    "quantize",
    "rmse",
    "ssim",
]
