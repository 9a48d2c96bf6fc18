import numpy as np

from gapfill.synth._noise import fractal, hash_uniform, speckle


def test_fields_do_not_depend_on_how_the_area_is_cut():
    u, v = np.meshgrid(np.arange(96) * 10.0 + 5, np.arange(80) * 10.0 + 5)
    whole = fractal(u, v, 300.0, 7)
    pieces = np.block(
        [
            [
                fractal(u[:40, :50], v[:40, :50], 300.0, 7),
                fractal(u[:40, 50:], v[:40, 50:], 300.0, 7),
            ],
            [
                fractal(u[40:, :50], v[40:, :50], 300.0, 7),
                fractal(u[40:, 50:], v[40:, 50:], 300.0, 7),
            ],
        ]
    )
    np.testing.assert_array_equal(whole, pieces)


def test_fractal_is_about_standard_normal_and_seeded():
    u, v = np.meshgrid(np.arange(400) * 10.0, np.arange(400) * 10.0)
    f = fractal(u, v, 200.0, 1)
    assert abs(f.mean()) < 0.2 and 0.7 < f.std() < 1.3
    assert not np.array_equal(f, fractal(u, v, 200.0, 2))


def test_hash_uniform_is_uniform_and_speckle_has_mean_one_and_enl_four():
    ix, iy = np.meshgrid(np.arange(300), np.arange(300))
    h = hash_uniform(5, ix, iy)
    assert 0 <= h.min() and h.max() < 1
    assert np.histogram(h, bins=10, range=(0, 1))[0].min() > 8000
    s = speckle(5, ix, iy)
    assert abs(s.mean() - 1) < 0.01
    assert abs(s.mean() ** 2 / s.var() - 4) < 0.2
