"""Realism is measured, and the measures can fail."""

import pytest

from gapfill.errors import InputError
from gapfill.synth import world_stats


def test_changes_are_visible_in_both_sensors(world_pc, real_sample):
    s = world_stats(world_pc, real_sample)
    assert 0.02 < s["change_fraction_mean"] < 0.6
    assert any(f > 0.05 for f in s["change_fraction_per_step"])
    # Change on the ground moves the radar too: |dS1| is clearly larger where S2 changed.
    assert s["mean_abs_ds1_db_changed"] > 1.3 * s["mean_abs_ds1_db_unchanged"]
    assert s["corr_abs_ds1_abs_ds2"] > 0.1
    classes = s["cloud_cover_classes"]
    assert classes["clear(<5%)"] >= 1 and classes["partial"] >= 1 and classes["cloudy(>95%)"] >= 1


def test_value_ranges_overlap_the_real_sample(world_pc, real_sample):
    s = world_stats(world_pc, real_sample)
    syn, real = s["value_ranges_p1_p50_p99"], s["reference_value_ranges_p1_p50_p99"]
    for band in ("s2_B02", "s2_B03", "s2_B04", "s2_B08"):
        assert 0.5 * real[band][1] < syn[band][1] < 2.0 * real[band][1], band
        assert syn[band][2] < 1.0
    for pol in ("s1_vv_db", "s1_vh_db"):
        assert abs(syn[pol][1] - real[pol][1]) < 4.0, pol
    assert real["s1_vv_db"][1] > real["s1_vh_db"][1] and syn["s1_vv_db"][1] > syn["s1_vh_db"][1]


def test_stats_of_a_folder_that_is_no_world(tmp_path):
    with pytest.raises(InputError, match="world.json"):
        world_stats(tmp_path)
