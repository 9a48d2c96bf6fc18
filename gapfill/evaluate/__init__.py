"""Evaluation: PSNR, SSIM, SAM (the paper's MSA), the O1 baseline, scores against truth."""

from gapfill.evaluate.metrics import image_metrics
from gapfill.evaluate.truth import score_against_truth

__all__ = ["image_metrics", "score_against_truth"]
