"""Region specs: the examples validate, the schema is current, bad specs say where."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from gapfill.errors import InputError
from gapfill.fill.config import FillConfig
from gapfill.pipeline import RegionSpec, load_spec, spec_schema
from gapfill.pipeline.spec import SCHEMA_PATH

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"

GOOD = """\
name: test-region
aoi: "3.0194,50.8131,3.0283,50.8188"
stac_url: http://127.0.0.1:8081
window:
  start: 2017-08-01
cube:
  location: cube.zarr
product:
  location: out/filled.zarr
method: persistence
cube_options:
  chunk: 64
schedule: "0 6 * * *"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "region.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["demo.yaml", "template-planetary-computer.yaml"])
def test_the_example_specs_validate(name):
    spec = load_spec(PIPELINES / name)
    assert Path(spec.cube.location).is_absolute()


def test_the_checked_in_schema_is_current():
    assert SCHEMA_PATH.read_text() == spec_schema(), (
        "regenerate it: gapfill pipeline-schema --out pipelines/schema.json"
    )


def test_relative_locations_are_read_from_the_spec_folder(tmp_path):
    spec = load_spec(_write(tmp_path, GOOD))
    assert spec.cube.location == str(tmp_path / "cube.zarr")
    assert spec.product.location == str(tmp_path / "out" / "filled.zarr")
    assert spec.cube_settings() == {"chunk": 64}


def test_the_spec_methods_are_fills_methods_without_auto():
    spec_methods = set(RegionSpec.model_fields["method"].annotation.__args__)
    fill_methods = set(FillConfig.model_fields["method"].annotation.__args__)
    assert spec_methods == fill_methods - {"auto"}


def test_a_rolling_window_ends_at_now():
    spec = RegionSpec.model_validate(
        {**_minimal(), "window": {"last": "90d"}},
    )
    assert spec.window.span(dt.date(2024, 6, 30)) == (dt.date(2024, 4, 1), dt.date(2024, 6, 30))


def _minimal() -> dict:
    return {
        "name": "r",
        "aoi": "0,0,1,1",
        "window": {"start": "2024-01-01"},
        "cube": {"location": "c.zarr"},
        "product": {"location": "p.zarr"},
        "method": "persistence",
        "schedule": "0 6 * * *",
    }


# (text replaced, replacement, what the one line says): None replaces the whole file.
BAD = [
    ("  chunk: 64", "  chunks: 64", "line 12: cube_options.chunks: unknown key"),
    ("  chunk: 64", "  chunk: many", "line 12: cube_options.chunk: Input should be"),
    ("schedule:", "colour: blue\nschedule:", "line 13: colour: unknown key"),
    ('"0 6 * * *"', '"61 6 * * *"', "line 13: schedule: '61 6 * * *' is not a cron line"),
    ("  start: 2017-08-01", "  start: 2017-08-01\n  last: 90d", "window: give either start"),
    ("method: persistence", "method: model", "model: give the run directory"),
    ("method: persistence", "method: auto", "line 10: method: Input should be"),
    ("name: test-region", "name: Test Region", "line 1: name: String should match"),
    (None, "- just\n- a list\n", "expected a mapping"),
    ("window:", "window: [", "fix the YAML"),
    (
        "schedule:",
        "fill_options:\n  uncertainty: 8\nschedule:",
        "fill_options.uncertainty: needs method model",
    ),
    (
        "method: persistence",
        "method: model\nmodel: run\nfill_options:\n  uncertainty: 1",
        "fill_options.uncertainty: Input should be greater than or equal to 2",
    ),
]


@pytest.mark.parametrize("old, new, expected", BAD)
def test_a_bad_spec_is_one_line_naming_line_and_key(tmp_path, old, new, expected):
    path = _write(tmp_path, new if old is None else GOOD.replace(old, new))
    with pytest.raises(InputError) as err:
        load_spec(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_the_cli_refuses_a_bad_spec_in_one_line_without_a_traceback(tmp_path):
    path = _write(tmp_path, GOOD + "colour: blue\n")
    res = subprocess.run(
        [sys.executable, "-m", "gapfill.cli", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"gapfill: error: spec {path} line 14: colour: unknown key "
        "(see schema.json for the keys a spec may have)"
    ]
    assert not (tmp_path / "cube.zarr").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "{tmp}/missing.yaml"], "cannot read spec {tmp}/missing.yaml"),
        (["run", "{spec}", "--now", "yesterday"], "--now 'yesterday' is not a date or time"),
        (["run", "{spec}", "--start", "2024-13-01"], "--start '2024-13-01' is not a day"),
        (["pipeline-schema", "--out", "{spec}/schema.json"], "is a file, not a folder"),
        (["pipeline-schema", "--out", "{tmp}"], "is a folder: give the JSON file"),
    ],
)
def test_bad_run_and_schema_arguments_are_one_line(tmp_path, args, expected):
    spec = _write(tmp_path, GOOD)
    argv = [a.format(tmp=tmp_path, spec=spec) for a in args]
    res = subprocess.run([sys.executable, "-m", "gapfill.cli", *argv],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected.format(tmp=tmp_path) in lines[0], res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["region.yaml"]
