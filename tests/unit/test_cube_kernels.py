"""The per-chunk numpy kernels of the cube."""

import numpy as np

from gapfill.cube.compute import _first_valid, _lee, _s1_kernel, _s2_kernel


def test_lee_filter_reduces_speckle_and_keeps_the_mean_and_gaps():
    rng = np.random.default_rng(0)
    flat = rng.gamma(4.4, 1 / 4.4, (64, 64)).astype(np.float32) * 0.1
    flat[10, 10] = np.nan
    out = _lee(flat)
    assert np.isnan(out[10, 10]) and np.isfinite(np.delete(out.ravel(), 10 * 64 + 10)).all()
    assert abs(np.nanmean(out) - np.nanmean(flat)) < 0.005
    assert np.nanstd(out) < 0.5 * np.nanstd(flat)


def test_lee_filters_each_scene_and_polarisation_on_its_own():
    rng = np.random.default_rng(1)
    stack = rng.gamma(4.4, 1 / 4.4, (3, 2, 32, 32)).astype(np.float32)
    out = _lee(stack)
    for k in range(3):
        for p in range(2):
            np.testing.assert_allclose(out[k, p], _lee(stack[k, p]), rtol=1e-6)


def test_first_valid_takes_candidates_in_order_per_pixel():
    values = np.array([[[[1.0, 2.0]]], [[[3.0, 4.0]]]])  # (k=2, c=1, y=1, x=2)
    valid = np.array([[[False, True]], [[True, True]]])
    out, idx = _first_valid(values, valid)
    assert out.tolist() == [[[3.0, 2.0]]] and idx.tolist() == [[1, 0]]
    none, idx = _first_valid(values, np.zeros_like(valid))
    assert np.isnan(none).all() and (idx == -1).all()


def test_s2_kernel_mosaics_reflectance_and_scl_from_the_same_item():
    raw = np.full((2, 5, 1, 2), np.nan, np.float32)
    raw[0, :4, 0, 0] = 2000  # item 0 covers pixel 0 only
    raw[0, 4, 0, 0] = 4
    raw[1, :4] = 3000  # item 1 covers both
    raw[1, 4] = 9
    scale = np.full((2, 4), 1e-4, np.float32)
    offset = np.full((2, 4), -0.1, np.float32)
    out = _s2_kernel(raw, scale, offset)
    np.testing.assert_allclose(out[:4, 0, 0], 0.1, atol=1e-6)
    np.testing.assert_allclose(out[:4, 0, 1], 0.2, atol=1e-6)
    assert out[4].tolist() == [[4.0, 9.0]]


def test_s1_kernel_picks_the_nearest_valid_scene_and_its_dt_and_orbit():
    lin = np.full((2, 2, 1, 2), -32768.0, np.float32)
    lin[0, :, 0, 1] = 0.1  # nearest scene covers pixel 1 only
    lin[1] = 0.01
    out = _s1_kernel(lin, np.array([1.0, -3.0], np.float32), np.array([11.0, 113.0], np.float32))
    np.testing.assert_allclose(out[:2, 0], [[-20.0, -10.0], [-20.0, -10.0]], atol=1e-5)
    assert out[2].tolist() == [[-3.0, 1.0]] and out[3].tolist() == [[113.0, 11.0]]


def test_s2_kernel_of_one_item_equals_the_mosaic_rule():
    rng = np.random.default_rng(2)
    raw = rng.uniform(1, 9000, (1, 5, 6, 7)).astype(np.float32)
    raw[0, 1, 2, 3] = np.nan  # one band missing: the pixel is no data in every band
    raw[0, 4] = rng.integers(0, 12, (6, 7))
    scale, offset = np.full((1, 4), 1e-4, np.float32), np.full((1, 4), -0.1, np.float32)
    out = _s2_kernel(raw, scale, offset)
    refl = np.clip(raw[:, :4] * scale[:, :, None, None] + offset[:, :, None, None], 1e-4, 6.5)
    valid = np.isfinite(refl).all(axis=1)
    want, _ = _first_valid(np.concatenate([refl, raw[:, 4:]], axis=1), valid)
    np.testing.assert_array_equal(out, want)
    assert np.isnan(out[:, 2, 3]).all() and out.dtype == np.float32
