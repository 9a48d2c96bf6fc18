"""PSNR, SSIM and SAM (the paper's MSA) through torchmetrics, on reflectance."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

__all__ = ["image_metrics"]


def image_metrics(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and SAM (degrees) of (N, bands, H, W) reflectance images."""
    pred = pred.clamp(0, data_range).double()
    target = target.clamp(0, data_range).double()
    psnr = peak_signal_noise_ratio(
        pred, target, data_range=data_range, dim=(1, 2, 3), reduction="elementwise_mean"
    )
    ssim = structural_similarity_index_measure(pred, target, data_range=data_range)
    sam = spectral_angle_mapper(pred.clamp_min(1e-6), target.clamp_min(1e-6))
    return {"psnr": _scalar(psnr), "ssim": _scalar(ssim), "sam_deg": _scalar(sam) * 180 / torch.pi}


def _scalar(value: object) -> float:
    assert isinstance(value, torch.Tensor)
    return float(value)
