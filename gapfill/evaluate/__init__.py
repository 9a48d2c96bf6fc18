"""Evaluation: PSNR, SSIM, SAM (the paper's MSA) and baselines."""

from gapfill.evaluate.metrics import image_metrics

__all__ = ["image_metrics"]
