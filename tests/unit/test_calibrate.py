"""Day calibration: a fill fitted to the clear pixels of its own day."""

from __future__ import annotations

import numpy as np

from gapfill.fill.baselines import fill_window_baseline
from gapfill.fill.calibrate import Calibration, calibrate, fit_mask
from gapfill.fill.infer import Window
from gapfill.fill.product import FILLED


def _scene(seed: int = 0, size: int = 64) -> np.ndarray:
    """A smooth 4-band reflectance field (band, y, x) in about 0.05-0.45."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    bands = [
        0.25 + 0.1 * np.sin(6 * xx + b) * np.cos(4 * yy - b) + 0.05 * rng.standard_normal()
        for b in range(4)
    ]
    return np.stack(bands).astype(np.float32)


def _cloud(size: int = 64, at: tuple[int, int] = (30, 34), radius: int = 15) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (yy - at[0]) ** 2 + (xx - at[1]) ** 2 < radius**2


def test_a_scene_wide_gain_and_offset_is_recovered_under_the_cloud():
    before = _scene()
    today = 1.3 * before + 0.04  # the whole scene brightened since the reference
    cloud = _cloud()
    fit = fit_mask(~cloud, np.ones_like(cloud), 0)
    out = calibrate(before, today, fit, Calibration())
    raw_err = np.abs(before - today)[:, cloud].mean()
    err = np.abs(out - today)[:, cloud].mean()
    assert raw_err > 0.08
    assert err < 0.05 * raw_err


def test_nothing_to_fit_or_switched_off_keeps_the_fill_and_its_gaps():
    before, today = _scene(), _scene(1)
    before[:, 0, 0] = np.nan
    none = np.zeros(before.shape[1:], bool)
    assert np.array_equal(calibrate(before, today, none, Calibration()), before, equal_nan=True)
    fit = np.ones(before.shape[1:], bool)
    off = calibrate(before, today, fit, Calibration(enabled=False))
    assert np.array_equal(off, before, equal_nan=True)
    on = calibrate(before, today, fit, Calibration())
    assert np.isnan(on[:, 0, 0]).all() and np.isfinite(on[:, 1:, 1:]).all()


def test_a_pixel_depends_only_on_its_halo():
    """What a fill task relies on: a chunk read with `halo_px` of context around it gets
    the pixels a whole-image pass gets (no seams at chunk borders)."""
    cfg = Calibration()
    before = _scene(2, 160)
    today = _scene(3, 160) + 0.1 * before
    fit = fit_mask(~_cloud(160, (70, 75), 20), np.ones((160, 160), bool), cfg.buffer_px)
    whole = calibrate(before, today, fit, cfg)
    y0, y1, x0, x1, h = 60, 90, 50, 80, cfg.halo_px
    crop = (slice(y0 - h, y1 + h), slice(x0 - h, x1 + h))
    part = calibrate(before[:, crop[0], crop[1]], today[:, crop[0], crop[1]], fit[crop], cfg)
    np.testing.assert_allclose(part[:, h:-h, h:-h], whole[:, y0:y1, x0:x1], rtol=0, atol=1e-6)


def test_a_cloud_wider_than_the_windows_fades_back_to_the_fill_without_an_edge():
    before = _scene(4, 192)
    today = 1.3 * before + 0.04
    cloud = _cloud(192, (96, 96), 70)
    out = calibrate(before, today, fit_mask(~cloud, np.ones_like(cloud), 0), Calibration())
    centre = (slice(94, 99), slice(94, 99))
    np.testing.assert_allclose(out[:, centre[0], centre[1]], before[:, centre[0], centre[1]])
    step = np.abs(np.diff(out - before, axis=2))[:, cloud[:, 1:] & cloud[:, :-1]]
    assert step.max() < 0.01  # the correction changes gradually from pixel to pixel


def test_the_fit_leaves_out_clear_pixels_next_to_a_cloud():
    cloud = _cloud()
    fit = fit_mask(~cloud, np.ones_like(cloud), 2)
    assert not (fit & cloud).any()
    assert (~cloud & ~fit).sum() > 0  # a ring around the cloud is left out
    assert fit[0, 0] and fit.sum() < (~cloud).sum()


def test_a_calibrated_baseline_fill_beats_the_raw_one_on_a_brightened_day():
    days = np.array(["2022-01-01", "2022-01-11"], dtype="datetime64[ns]")
    ref = _scene()
    s2 = np.stack([ref, 1.2 * ref + 0.03])
    cloud = _cloud()
    clear = np.stack([np.ones_like(cloud), ~cloud])
    win = Window(days, s2, np.zeros((2, 0, 64, 64), np.float32), clear, np.zeros((2, 64, 64)))
    raw = fill_window_baseline(win, [1], [True], "persistence", 60, Calibration(enabled=False))
    cal = fill_window_baseline(win, [1], [True], "persistence", 60, Calibration())
    assert (cal.status[0][cloud] == FILLED).all()
    err_raw = np.abs(raw.s2[0] - s2[1])[:, cloud].mean()
    err_cal = np.abs(cal.s2[0] - s2[1])[:, cloud].mean()
    assert err_cal < 0.05 * err_raw
    assert np.array_equal(cal.s2[0][:, ~cloud], s2[1][:, ~cloud])  # clear pixels untouched
