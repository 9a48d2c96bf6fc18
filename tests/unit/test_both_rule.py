"""Rule `both` (a later reference too) and residual learning, on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gapfill.cube.reference import ReferenceRule, lookahead_last, pick_next_reference
from gapfill.models import build_generator, input_channels
from gapfill.normalize import Normalisation, model_input

T = np.array(["2022-04-01", "2022-04-11", "2022-04-21", "2022-05-01"], dtype="datetime64[ns]")
BOTH = ReferenceRule(rule="both", lookahead_days=25)


def test_the_first_later_clear_day_same_orbit_within_the_lookahead():
    clear = np.zeros((4, 1, 4), bool)
    orbit = np.full((4, 1, 4), 11, np.int16)
    clear[3, 0, :] = True  # day 3 (30 days after day 0) clear everywhere
    clear[2, 0, 1] = True  # day 2 clear at pixel 1
    clear[1, 0, 2] = True  # day 1 clear at pixel 2, but another orbit
    orbit[1, 0, 2] = 113
    ref, ahead = pick_next_reference(T, 0, clear, orbit, BOTH)
    np.testing.assert_array_equal(ref[0], [-1, 2, -1, -1])  # day 3 is beyond 25 days
    np.testing.assert_array_equal(ahead[0], [-1, 20, -1, -1])
    ref, _ = pick_next_reference(T, 0, clear, orbit, BOTH.model_copy(update={"same_orbit": False}))
    assert ref[0, 2] == 1
    last, _ = pick_next_reference(T, 3, clear, orbit, BOTH)  # nothing after the last day
    assert (last == -1).all()
    assert lookahead_last(T, 0, BOTH) == 2 and lookahead_last(T, 0, ReferenceRule()) == 0


def _inputs(later_available: bool):
    rng = np.random.default_rng(0)
    s1 = rng.uniform(-20, -5, (3, 2, 8, 8)).astype(np.float32)
    o1, o3 = rng.uniform(0.05, 0.4, (2, 4, 8, 8)).astype(np.float32)
    age1 = np.full((8, 8), 10.0, np.float32)
    ahead = np.full((8, 8), 30.0 if later_available else -1.0, np.float32)
    if not later_available:
        o3[:] = np.nan
    later = (s1[2], o3, age1, ahead)
    return model_input(Normalisation(), "B", s1[0], s1[1], o1, later), o1, o3


def test_a_missing_later_side_is_zeros_and_never_invalidates_a_pixel():
    (x, valid), *_ = _inputs(later_available=False)
    names = input_channels("B", both=True)
    assert x.shape[0] == len(names) == 17 and valid.all()
    later = [i for i, c in enumerate(names) if c.startswith(("S1_t3", "O3", "age:t3", "avail"))]
    assert (x[later] == 0).all()
    (x_av, _), *_ = _inputs(later_available=True)
    assert (x_av[names.index("avail:t3")] == 1).all()
    np.testing.assert_allclose(x_av[names.index("age:t3")], 0.5)  # 30 / 60 days


@pytest.mark.parametrize("blend", [False, True])
def test_residual_output_is_the_baseline_when_the_correction_is_zero(blend):
    norm = Normalisation()
    g = build_generator("mtcnn", "test-tiny", residual=True, both=True, blend=blend).eval()
    for available in (True, False):
        (x, _), o1, o3 = _inputs(available)
        with torch.no_grad():
            out = g(torch.from_numpy(x)[None])[0].numpy()
        refl = norm.optical_inverse(out)
        # zero-initialised head: O1 + 10/(10+30) of the way to O3, or O1 alone (causal)
        want = o1 + 0.25 * (o3 - o1) if available else o1
        np.testing.assert_allclose(refl, want, atol=2e-6)
    causal = build_generator("mtcnn", "test-tiny", residual=True).eval()
    (x, _), o1, _ = _inputs(False)
    with torch.no_grad():
        out = causal(torch.from_numpy(x[:8])[None])[0].numpy()
    np.testing.assert_allclose(norm.optical_inverse(out), o1, atol=2e-6)
    paper = build_generator("mtcnn", "test-tiny").eval()
    with torch.no_grad():
        assert not np.allclose(paper(torch.from_numpy(x[:8])[None])[0].numpy(), out)


def test_blend_moves_each_pixel_between_the_earlier_and_the_later_reference():
    norm = Normalisation()
    g = build_generator("mtcnn", "test-tiny", residual=True, both=True, blend=True).eval()
    head = g.decoder[-1]
    assert head.out_channels == 5  # four corrections and the weight shift
    for shift, weight in ((0.5, 0.75), (1.0, 1.0), (-1.0, 0.0)):
        with torch.no_grad():
            head.bias[-1] = shift  # the time weight 0.25 moved, kept within [0, 1]
        for available in (True, False):
            (x, _), o1, o3 = _inputs(available)
            with torch.no_grad():
                out = norm.optical_inverse(g(torch.from_numpy(x)[None])[0].numpy())
            want = o1 + weight * (o3 - o1) if available else o1  # causal: no later side
            np.testing.assert_allclose(out, want, atol=2e-6)
