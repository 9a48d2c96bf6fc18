"""The Monte-Carlo dropout spread (`fill --uncertainty N`) and its calibration measure."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from gapfill.bands import PAPER_BANDS
from gapfill.fill import FillConfig, product
from gapfill.fill.infer import fill_window, halo_of, mc_dropout_spread
from gapfill.metrics import Z90, spread_calibration
from tests.conftest import untrained_model
from tests.unit.test_fill_window import _window

DAYS = [np.datetime64("2022-03-01"), np.datetime64("2022-03-11")]


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (2, 8, 40, 52)).astype(np.float32)


def _spread(g, card, x, **kw):
    base = dict(passes=6, tile=16, halo=halo_of(card), batch=4)
    return mc_dropout_spread(g, x, DAYS, **{**base, **kw})


def test_no_dropout_means_no_spread_and_dropout_gives_one():
    g, card = untrained_model(bands=PAPER_BANDS)
    x = _inputs()
    with_dropout = _spread(g, card, x)
    assert with_dropout.shape == (2, 4, 40, 52)
    assert (with_dropout >= 0).all() and (with_dropout > 0).mean() > 0.9
    plain = copy.deepcopy(g)
    for m in plain.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    assert np.array_equal(_spread(plain, card, x), np.zeros_like(with_dropout))


def test_the_spread_is_reproducible_and_leaves_the_model_and_rng_alone():
    g, card = untrained_model(bands=PAPER_BANDS)
    x = _inputs()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = _spread(g, card, x)
    after = torch.rand(3)
    b = _spread(g, card, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(before.numpy(), after.numpy())  # global RNG untouched
    assert not g.training and all(not m.training for m in g.modules())
    other_day = mc_dropout_spread(
        g, x, [DAYS[1], DAYS[0]], passes=6, tile=16, halo=halo_of(card), batch=4
    )
    assert not np.array_equal(a, other_day)  # seeded by day (and position)


def test_fill_window_adds_the_spread_where_filled_only_and_keeps_the_values():
    g, card = untrained_model(bands=PAPER_BANDS)
    w = _window()
    w.clear[3, :12] = False
    plain = fill_window(w, [3], [True], g, card, tile=16, batch=2)
    assert plain.uncertainty is None
    res = fill_window(w, [3], [True], g, card, tile=16, batch=2, uncertainty=5)
    np.testing.assert_array_equal(res.s2, plain.s2)
    np.testing.assert_array_equal(res.status, plain.status)
    filled = res.status[0] == product.FILLED
    assert filled.any() and (~filled).any()
    sigma = res.uncertainty[0]
    assert np.isfinite(sigma[:, filled]).all() and (sigma[:, filled] > 0).any()
    assert np.isnan(sigma[:, ~filled]).all()


def test_spread_calibration_on_a_hand_made_case():
    got = spread_calibration(np.array([0.1, -0.2, 0.5, 0.0]), np.array([0.1, 0.1, 0.1, 0.0]))
    # |error| / sigma = 1, 2, 5 and 0 (0/0: no error, no spread); within 1.645: 1 and 0
    assert got["coverage"] == 0.5
    assert got["scale_for_90"] == pytest.approx(5 / Z90)  # the 90th percentile: 5
    assert got["zero_sigma_share"] == 0.25
    assert got["correlation"] == pytest.approx(
        np.corrcoef([0.1, 0.1, 0.1, 0.0], [0.1, 0.2, 0.5, 0.0])[0, 1]
    )
    assert got["values"] == 4


def test_a_calibrated_gaussian_spread_covers_90_percent():
    rng = np.random.default_rng(0)
    sigma = rng.uniform(0.01, 0.1, 200_000)
    got = spread_calibration(rng.normal(0, sigma), sigma)
    assert got["coverage"] == pytest.approx(0.90, abs=0.005)
    assert got["scale_for_90"] == pytest.approx(1.0, abs=0.02)
    assert got["correlation"] > 0.3
    halved = spread_calibration(rng.normal(0, sigma), sigma / 2)
    assert halved["coverage"] < 0.7 and halved["scale_for_90"] == pytest.approx(2.0, abs=0.05)
    blind = spread_calibration(np.ones(10), np.r_[np.zeros(2), np.ones(8)])
    assert blind["scale_for_90"] is None and blind["zero_sigma_share"] == 0.2


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"uncertainty": 0}, "greater than or equal to 2"),
        ({"uncertainty": -3}, "greater than or equal to 2"),
        ({"uncertainty": 4, "method": "interpolate", "model": None}, "--uncertainty needs"),
    ],
)
def test_bad_uncertainty_requests_are_refused(kw, needle):
    base = {"cube": "c.zarr", "model": "run", "out": "o.zarr"}
    with pytest.raises(ValueError, match=needle):
        FillConfig(**{**base, **kw})


def test_evaluate_refuses_too_few_passes():
    from gapfill.evaluate import EvaluateConfig

    with pytest.raises(ValueError, match="greater than or equal to 2"):
        EvaluateConfig(cube="c.zarr", model="run", uncertainty=1)
