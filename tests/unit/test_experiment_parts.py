"""The experiment's parts that need no cluster: regions, runs, the comparison's
interval and paired differences, the SAR composite."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from gapfill.evaluate.compare import O1, Comparison
from gapfill.evaluate.figures import sar_colour
from gapfill.experiment.paper import CASE1, CASE1_EXTRA, CASE2, CASE2_EXTRA, ExperimentConfig
from gapfill.experiment.regions import REGIONS
from gapfill.grid import east_half, parse_aoi
from gapfill.metrics import Scores
from gapfill.synth import WorldSpec


def test_regions_sit_apart_and_two_share_a_landscape():
    locations = {
        WorldSpec(landscape=r.landscape, site=r.site).location.mgrs_tile for r in REGIONS.values()
    }
    assert len(locations) == 3
    kinds = [r.landscape for r in REGIONS.values()]
    assert kinds.count("flat-agri") == 2 and REGIONS["r1"].landscape == "mountain-arid"
    assert len({r.seed for r in REGIONS.values()}) == 3
    assert len({r.start for r in REGIONS.values()}) == 3


def test_an_unknown_site_is_refused():
    with pytest.raises(ValidationError, match="unknown site"):
        WorldSpec(site="atlantis")


def test_every_run_has_its_own_name_and_folder():
    runs = CASE1 + CASE1_EXTRA + CASE2 + CASE2_EXTRA
    names = {r.name for r in runs}
    assert len(names) == len(set(runs)) == 12
    assert "mtcnn-all" in names and "mtcnn-both-r2" in names


def test_the_east_half_is_half_the_box():
    geom = parse_aoi(east_half([10.0, 40.0, 12.0, 41.0])).geometry
    assert geom.bounds == (11.0, 40.0, 12.0, 41.0)


def test_settings_leave_out_the_folder_and_presets_are_checked():
    a = ExperimentConfig(out="a", preset="cpu-tiny")
    assert "out" not in a.settings()
    assert a.settings() == ExperimentConfig(out="b", preset="cpu-tiny").settings()
    with pytest.raises(ValidationError, match="unknown preset"):
        ExperimentConfig(out="a", preset="huge")


def _scores(psnr: float) -> Scores:
    return Scores(psnr=psnr, ssim=0.5, sam_deg=3.0, rmse=0.01, pixels=100)


def test_paired_differences_are_per_day_and_o1_is_not_compared_with_itself():
    comp = Comparison(
        days=["2022-01-01", "2022-01-11", "2022-01-21"],
        methods=["m", O1],
        pixels=[100, 100, 100],
        per_day={
            "m": [_scores(30.0), _scores(20.0), _scores(25.0)],
            O1: [_scores(28.0), _scores(19.0), _scores(24.0)],
        },
    )
    vs = comp.versus()
    assert set(vs) == {"m"}
    assert vs["m"]["psnr"]["mean"] == pytest.approx(4 / 3)
    # the per-day gain is 1 or 2 dB whatever the day's level: its interval stays in [1, 2]
    assert 1.0 <= vs["m"]["psnr"]["low"] <= vs["m"]["psnr"]["high"] <= 2.0
    overall = comp.overall()["m"]["psnr"]
    assert overall["mean"] == pytest.approx(25.0) and overall["low"] < 25.0 < overall["high"]


def test_the_sar_composite_is_bright_where_backscatter_is_strong():
    s1 = np.array([[[-25.0, 0.0]], [[-32.0, -5.0]]], np.float32)  # (pol, y=1, x=2)
    img = sar_colour(s1)
    assert img.shape == (1, 2, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 0 and img[0, 1, 0] == 255
    assert sar_colour(np.full((2, 1, 1), np.nan, np.float32)).max() == 0


@pytest.mark.parametrize("marker", ["[1, 2]", "{not json", '{"experiment": "paper"}'])
def test_a_garbled_marker_is_refused_and_kept(tmp_path, marker):
    from gapfill.errors import InputError
    from gapfill.experiment import run_paper

    (tmp_path / "experiment.json").write_text(marker)
    with pytest.raises(InputError, match="holds another experiment"):
        run_paper(ExperimentConfig(out=str(tmp_path)))
    assert (tmp_path / "experiment.json").read_text() == marker
    assert [p.name for p in tmp_path.iterdir()] == ["experiment.json"]
