import numpy as np

from gapfill.cube.reference import ReferenceRule, pick_reference
from gapfill.normalize import Normalisation

T = np.array(["2022-04-01", "2022-04-11", "2022-04-21", "2022-05-01"], dtype="datetime64[ns]")


def test_most_recent_clear_day_per_pixel_same_orbit_within_lookback():
    clear = np.zeros((4, 1, 4), bool)
    orbit = np.full((4, 1, 4), 11, np.int16)
    clear[0, 0, :] = True  # day 0 clear everywhere
    clear[2, 0, 1] = True  # day 2 clear at pixel 1 only
    clear[1, 0, 2] = True  # day 1 clear at pixel 2, but another orbit
    orbit[1, 0, 2] = 113
    orbit[3, 0, 3] = 0  # no S1 on the target day at pixel 3
    ref, age = pick_reference(T, 3, clear, orbit, ReferenceRule(lookback_days=60))
    np.testing.assert_array_equal(ref[0], [0, 2, 0, -1])
    np.testing.assert_array_equal(age[0], [30, 10, 30, -1])
    any_orbit, _ = pick_reference(T, 3, clear, orbit, ReferenceRule(same_orbit=False))
    assert any_orbit[0, 2] == 1
    short, _ = pick_reference(T, 3, clear, orbit, ReferenceRule(lookback_days=15))
    np.testing.assert_array_equal(short[0], [-1, 2, -1, -1])
    first, _ = pick_reference(T, 0, clear, orbit, ReferenceRule())
    assert (first == -1).all()


def test_normalisation_round_trip_and_imputation():
    n = Normalisation()
    db = np.array([[-30.0, -25.0, -12.5, 0.0, 3.0], [-40.0, -32.5, -16.25, 0.0, np.nan]])
    np.testing.assert_allclose(n.sar(db)[0], [-1, -1, 0, 1, 1])
    assert np.isnan(n.sar(db)[1, 4]) and n.sar(db)[1, 2] == 0
    refl = np.array([[0.0, 0.3, 0.6, 0.9]] * 4)
    np.testing.assert_allclose(n.optical(refl)[0], [-1, 0, 1, 1])
    np.testing.assert_allclose(n.optical_inverse(n.optical(refl))[0], [0, 0.3, 0.6, 0.6], atol=1e-6)
    x, valid = n.impute(np.array([[1.0, np.nan], [0.5, 0.5]]))
    assert x.tolist() == [[1.0, 0.0], [0.5, 0.5]] and valid.tolist() == [True, False]
