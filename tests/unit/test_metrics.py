"""Masked scores agree with torchmetrics on whole images and see only the mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    spectral_angle_mapper,
    structural_similarity_index_measure,
)

from gapfill.metrics import masked_scores


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.02, 0.5, (4, 40, 48))
    pred = np.clip(truth + rng.normal(0, 0.03, truth.shape), 0.01, 0.6)
    return pred, truth


def test_psnr_and_sam_equal_torchmetrics_per_band_on_the_masked_pixels():
    pred, truth = _pair()
    mask = np.zeros((40, 48), bool)
    mask[5:30, 10:20] = True
    s = masked_scores(pred, truth, mask, 0.6)
    per_band = [
        float(
            peak_signal_noise_ratio(
                torch.tensor(pred[b][mask]), torch.tensor(truth[b][mask]), data_range=0.6
            )
        )
        for b in range(4)
    ]
    assert s.psnr == pytest.approx(np.mean(per_band), abs=1e-9)
    sam = spectral_angle_mapper(
        torch.tensor(pred[:, mask])[None, :, :, None],
        torch.tensor(truth[:, mask])[None, :, :, None],
    )
    assert s.sam_deg == pytest.approx(float(sam) * 180 / np.pi, abs=1e-9)
    assert s.rmse == pytest.approx(np.sqrt(((pred - truth)[:, mask] ** 2).mean()), abs=1e-12)
    assert s.pixels == mask.sum()


def test_ssim_over_a_full_mask_equals_torchmetrics_and_ignores_unmasked_errors():
    pred, truth = _pair(1)
    s = masked_scores(pred, truth, np.ones((40, 48), bool), 0.6)
    ref = np.mean(
        [
            float(
                structural_similarity_index_measure(
                    torch.tensor(pred[b])[None, None],
                    torch.tensor(truth[b])[None, None],
                    data_range=0.6,
                )
            )
            for b in range(4)
        ]
    )
    assert s.ssim == pytest.approx(ref, abs=1e-9)
    mask = np.zeros((40, 48), bool)
    mask[:, :10] = True
    worse = pred.copy()
    worse[:, :, 30:] = 0.0  # far from the mask: outside SSIM's window, outside the scores
    a, b = masked_scores(pred, truth, mask, 0.6), masked_scores(worse, truth, mask, 0.6)
    assert a == b
    perfect = masked_scores(truth, truth, mask, 0.6)
    assert perfect.ssim == pytest.approx(1.0) and perfect.rmse == 0 and perfect.sam_deg < 1e-3
