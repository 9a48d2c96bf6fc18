"""The fill kernel on small arrays: tiled inference with the halo, flags, references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gapfill.bands import PAPER_BANDS
from gapfill.cube import layout
from gapfill.fill import product
from gapfill.fill.infer import Window, _haloed_tiles, fill_window, halo_of, tiled_forward
from tests.conftest import untrained_model


@pytest.mark.parametrize("tile", [7, 16, 40])
def test_tiles_with_the_halo_equal_one_full_pass_and_less_halo_does_not(tile):
    g, card = untrained_model(bands=PAPER_BANDS)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 8, 40, 52)).astype(np.float32)
    with torch.inference_mode():
        full = g(torch.from_numpy(x)).numpy()
    halo = halo_of(card)
    tiled = tiled_forward(g, x, tile=tile, halo=halo, batch=4)
    np.testing.assert_allclose(tiled, full, rtol=0, atol=2e-6)
    if tile < 40:
        short = tiled_forward(g, x, tile=tile, halo=halo - 2, batch=4)
        # An untrained net barely looks far, yet a short halo shows 100x the rounding noise.
        noise = max(float(np.abs(tiled - full).max()), 1e-7)
        assert np.abs(short - full).max() > 100 * noise


@pytest.mark.parametrize("tile", [7, 16, 256, 1024])
@pytest.mark.parametrize("side", [1, 40, 300, 1080])
def test_tiles_share_one_shape_carry_the_halo_and_cover_each_pixel_once(tile, side):
    halo, h, w = 28, side, side + 13
    seen = np.zeros((h, w), int)
    shapes = set()
    for (ya, yb, xa, xb), (iy0, iy1, ix0, ix1) in _haloed_tiles(h, w, tile, halo):
        assert 0 <= ya < yb <= h and 0 <= xa < xb <= w
        shapes.add((yb - ya, xb - xa))
        seen[ya + iy0 : ya + iy1, xa + ix0 : xa + ix1] += 1
        # context: `halo` px each side of the written part, except at the array's edge
        assert ya + iy0 == 0 or iy0 >= halo
        assert xa + ix0 == 0 or ix0 >= halo
        assert ya + iy1 == h or yb - (ya + iy1) >= halo
        assert xa + ix1 == w or xb - (xa + ix1) >= halo
    assert len(shapes) == 1
    (sy, sx) = shapes.pop()
    assert sy <= tile + 2 * halo and sx <= tile + 2 * halo
    assert (seen == 1).all()


def test_a_window_just_over_a_tile_is_cut_evenly_and_a_chunk_of_tiles_exactly():
    # fill's window: a 256 px chunk plus 29 px each side, an 18 px model halo
    ys = sorted({o[:2] for o, _ in _haloed_tiles(314, 314, 256, 18)})
    assert ys == [(0, 175), (139, 314)]
    ys = sorted({o[:2] for o, _ in _haloed_tiles(1080, 1080, 256, 28)})
    assert ys == [(0, 312), (256, 568), (512, 824), (768, 1080)]
    assert [o for o, _ in _haloed_tiles(1080, 1080, 1024, 28)] == [(0, 1080, 0, 1080)]


def _window(t: int = 4, size: int = 24, seed: int = 0) -> Window:
    rng = np.random.default_rng(seed)
    times = np.array([np.datetime64("2022-01-01") + np.timedelta64(10 * i, "D") for i in range(t)])
    s2 = rng.uniform(0.02, 0.4, (t, 4, size, size)).astype(np.float32)
    s1 = rng.uniform(-20, -5, (t, 2, size, size)).astype(np.float32)
    clear = np.ones((t, size, size), bool)
    orbit = np.full((t, size, size), 11, np.int16)
    return Window(times.astype("datetime64[ns]"), s2, s1, clear, orbit)


def test_flags_and_values_follow_the_reference_rule():
    g, card = untrained_model(bands=PAPER_BANDS)
    w = _window()
    t = 3
    w.clear[t, :12] = False  # cloudy top half on the target day
    w.s2[t, :, 20:, :] = np.nan  # no observation at the bottom
    w.clear[t, 20:] = False
    w.clear[:t, :4, :4] = False  # never clear before: no reference there
    w.orbit[2, 4:8, :] = 113  # another orbit on the latest earlier day
    w.s1[t, :, 8:10, 0:3] = np.nan  # no S1 on the target day
    w.orbit[t, 8:10, 0:3] = layout.S1_ORBIT_MISSING
    res = fill_window(w, [t], [True], g, card, tile=16, batch=2)
    st = res.status[0]
    assert (st[20:] == product.NODATA).all()
    assert (st[12:20] == product.CLEAR).all()
    np.testing.assert_array_equal(res.s2[0][:, 12:20], w.s2[t][:, 12:20])
    assert (st[:4, :4] == product.UNFILLED).all()
    assert (st[8:10, 0:3] == product.UNFILLED).all()
    filled = st == product.FILLED
    assert filled[:12].sum() == 12 * 24 - 16 - 6
    assert np.isnan(res.s2[0][:, ~filled & (st != product.CLEAR)]).all()
    # Same orbit: rows 4..7 skip day 2 (orbit 113) and take day 1, 20 days back.
    assert (res.reference_dt[0][4:8, 4:] == 20).all()
    assert (res.reference_dt[0][8:12, 4:] == 10).all()
    assert (res.reference_dt[0][~filled] == product.REFERENCE_DT_MISSING).all()
    sim = res.s2[0][:, filled]
    assert np.isfinite(sim).all() and sim.min() >= 0 and sim.max() <= 0.6


def test_a_day_not_chosen_for_filling_keeps_its_clouds_unfilled():
    g, card = untrained_model(bands=PAPER_BANDS)
    w = _window()
    w.clear[3, :5] = False
    res = fill_window(w, [3], [False], g, card, tile=16, batch=2)
    assert (res.status[0][:5] == product.UNFILLED).all() and res.model_px == 0


def test_task_a_models_need_no_reference():
    g, card = untrained_model("cnn", bands=PAPER_BANDS)
    w = _window()
    w.clear[:, :6] = False  # never clear: no reference anywhere at the top
    res = fill_window(w, [3], [True], g, card, tile=16, batch=2)
    assert (res.status[0][:6] == product.FILLED).all()
    assert (res.reference_dt[0] == product.REFERENCE_DT_MISSING).all()


def test_the_output_of_a_tile_does_not_depend_on_the_other_days_filled_with_it():
    g, card = untrained_model(bands=PAPER_BANDS)
    w = _window(t=6)
    w.clear[2:, 3:9] = False
    together = fill_window(w, [2, 3, 4, 5], [True] * 4, g, card, tile=16, batch=8)
    alone = fill_window(w, [4], [True], g, card, tile=16, batch=8)
    np.testing.assert_array_equal(together.s2[2], alone.s2[0])


def test_a_simulated_black_pixel_stays_a_value_not_the_fill_value():
    """Reflectance 0 would pack to the CF _FillValue (no data): filled pixels never go below
    the smallest packable reflectance."""
    g, card = untrained_model(bands=PAPER_BANDS)
    with torch.no_grad():
        g.decoder[-2].bias.fill_(-100.0)  # tanh -> -1 -> reflectance 0
    w = _window()
    w.clear[3, :5] = False
    res = fill_window(w, [3], [True], g, card, tile=16, batch=2)
    filled = res.status[0] == product.FILLED
    assert filled.sum() == 5 * 24
    assert (res.s2[0][:, filled] == layout.S2_MIN_VALID).all()
