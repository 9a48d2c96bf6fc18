"""Bad input through the `gapfill` command, as a user meets it: one line saying what is
wrong and what to do, the documented exit code (2 input, 3 service), no traceback, and
nothing left on disk that was not there before. The README's "Failure behaviour" table
lists these cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

GAPFILL = [sys.executable, "-m", "gapfill.cli"]
AOI = "3.0195,50.8131,3.0283,50.8188"
DAYS = ["--start", "2018-06-01", "--end", "2018-06-10"]
DEAD = "http://127.0.0.1:9"  # nothing listens: a check that reaches the network fails here


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(
    tmp: Path, args: list[str], code: int, *needles: str, env: dict[str, str] | None = None
) -> str:
    """Run `gapfill ARGS` in `tmp`; assert a one-line refusal with exit `code` that names
    every needle, and that `tmp` holds exactly what it held before."""
    before = _listing(tmp)
    proc = subprocess.run(
        [*GAPFILL, *args], capture_output=True, text=True, cwd=tmp, timeout=150, env=env
    )
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("gapfill: error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert _listing(tmp) == before
    return lines[0]


@pytest.fixture
def here(tmp_path: Path) -> Path:
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


def test_an_output_below_a_regular_file_is_refused_by_every_verb(here, cube_pc, model_tiny):
    bad = "afile/out"
    cases = [
        ["build-cube", "--aoi", AOI, *DAYS, "--out", f"{bad}.zarr", "--stac-url", DEAD],
        ["fill", "--cube", str(cube_pc), "--method", "persistence", "--out", f"{bad}.zarr"],
        ["evaluate", "--cube", str(cube_pc), "--model", str(model_tiny), "--out", bad],
        ["train", "--cube", str(cube_pc), "--out", bad, "--preset", "test-tiny"],
        ["quicklook", "nothing.zarr", "--date", "2022-04-03", "--out", f"{bad}.png"],
    ]
    for args in cases:
        _refused(here, args, 2, "afile is a file, not a folder", "choose another --out")


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        (["stac", "serve", ".", "--port", "70000"], 2, ["--port", "65535"]),
        (
            ["build-cube", "--aoi", AOI, *DAYS, "--epsg", "99999", "--out", "c.zarr"],
            2,
            ["EPSG:99999 is not a known CRS"],
        ),
        (
            ["build-cube", "--aoi", "179.5,0,-179.5,1", *DAYS, "--out", "c.zarr"],
            2,
            ["crosses the antimeridian", "split it"],
        ),
        (
            ["build-cube", "--aoi", "500000,5600000,501000,5601000", *DAYS, "--out", "c.zarr"],
            2,
            ["outside lon/lat range"],
        ),
        (
            [
                "build-cube",
                "--aoi",
                AOI,
                "--start",
                "2018-02-30",
                "--end",
                "2018-03-01",
                "--out",
                "c.zarr",
            ],
            2,
            ["--start", "is not a date"],
        ),
        (
            ["build-cube", "--aoi", AOI, *DAYS, "--chunk", "0", "--out", "c.zarr"],
            2,
            ["--chunk", "greater than or equal to 16"],
        ),
        (
            ["quicklook", "nothing.zarr", "--date", "2022-04-03", "--out", "."],
            2,
            ["--out . is a folder", "give the PNG file"],
        ),
        (
            ["build-cube", "--aoi", AOI, *DAYS, "--max-gap-days", "-1", "--out", "c.zarr"],
            2,
            ["--max-gap-days", "greater than or equal to 0"],
        ),
        (
            ["fill", "--cube", "c.zarr", "--method", "persistence", "--tile", "0", "--out", "p"],
            2,
            ["--tile", "greater than or equal to 16"],
        ),
        (
            ["train", "--cube", "c.zarr", "--epochs", "0", "--out", "r"],
            2,
            ["epochs", "greater than or equal to 1"],
        ),
        (
            ["train", "--cube", "c.zarr", "--workers", "0", "--out", "r"],
            2,
            ["workers", "greater than or equal to 1"],
        ),
        (
            ["train", "--cube", "c.zarr", "--cpus-per-worker", "0", "--out", "r"],
            2,
            ["cpus_per_worker", "greater than 0"],
        ),
    ],
)
def test_bad_cube_requests_are_refused_before_any_network(here, args, code, needles):
    _refused(here, [*args, "--stac-url", DEAD] if args[0] == "build-cube" else args, code, *needles)


def test_fill_refusals_leave_no_product(here, cube_pc, model_tiny):
    fill = ["fill", "--cube", str(cube_pc), "--out", "p.zarr"]
    base = [*fill, "--method", "persistence"]
    auto = [*fill, "--model", str(model_tiny), "--method", "auto"]
    cases = [
        ([*base, "--dask-scheduler", "garbage:::"], 2, "is not a scheduler address"),
        ([*base, "--dask-scheduler", "tcp://127.0.0.1:9"], 3, "no Dask scheduler answers"),
        ([*auto, "--no-calibrate"], 2, "--method auto decides on calibration itself"),
        ([*auto, "--evaluate-report", "missing.json"], 2, "missing.json does not exist"),
        ([*fill, "--model", "/etc"], 2, "no model.json"),
    ]
    for args, code, needle in cases:
        _refused(here, args, code, needle)


class _Payload:
    """Unpickling this runs a shell command: what a booby-trapped model.pt would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_model_carrying_code_is_refused_and_never_run(here, cube_pc, model_tiny):
    import shutil

    import torch

    run = here / "trap"
    shutil.copytree(model_tiny, run)
    marker = here / "ran"
    torch.save({"weight": _Payload(marker)}, run / "model.pt")
    for args in (
        ["fill", "--cube", str(cube_pc), "--model", str(run), "--out", "p.zarr"],
        ["evaluate", "--cube", str(cube_pc), "--model", str(run), "--out", "ev"],
        ["train", "--cube", str(cube_pc), "--init", str(run), "--out", "r", "--patch", "32"],
    ):
        _refused(here, args, 2, "model.pt cannot be loaded", "weights only")
        assert not marker.exists()  # torch.load(weights_only=True) never ran the payload


def test_yaml_with_python_tags_is_refused_and_never_run(here, cube_pc):
    marker = here / "ran"
    trap = here / "trap.yaml"
    trap.write_text(f'epochs: !!python/object/apply:os.system ["touch {marker}"]\n')
    _refused(here, ["train", "--config", "trap.yaml", "--cube", str(cube_pc)], 2, "trap.yaml")
    search = ["search", "--aoi", AOI, *DAYS, "--stac-url", DEAD, "--profile", "trap.yaml"]
    _refused(here, search, 2, "trap.yaml")
    assert not marker.exists()


def test_an_existing_file_or_foreign_folder_as_out_is_refused_and_kept(here, cube_pc, model_tiny):
    """Every verb refuses an --out that holds something it did not write, and leaves it
    (and its folder) exactly as it was: no lock folder beside it, no `.old` rename."""
    mine = here / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    persistence = ["fill", "--cube", str(cube_pc), "--method", "persistence"]
    evaluate = ["evaluate", "--cube", str(cube_pc), "--model", str(model_tiny)]
    for args, needle in (
        ([*persistence, "--out", "afile"], "exists and is not a filled product"),
        ([*persistence, "--out", "mine"], "exists and is not a filled product"),
        (["train", "--cube", str(cube_pc), "--out", "afile", "--patch", "32"], "is a file"),
        ([*evaluate, "--out", "afile"], "is not a report of 'gapfill evaluate'"),
        ([*evaluate, "--out", "mine"], "is not a report of 'gapfill evaluate'"),
    ):
        _refused(here, args, 2, needle, "choose another --out")
    assert (here / "afile").read_text() == "not a folder"
    assert (mine / "notes.txt").read_text() == "keep me"


def test_arguments_that_are_not_utf8_are_refused_before_any_work(here, cube_pc):
    bad = os.fsdecode(b"p\xff.zarr")
    for args in (
        ["fill", "--cube", str(cube_pc), "--method", "persistence", "--out", bad],
        ["build-cube", "--aoi", AOI, *DAYS, "--out", bad, "--stac-url", DEAD],
    ):
        _refused(here, args, 2, "--out p\\xff.zarr is not valid UTF-8", "rename it")


def test_broken_models_and_configs_say_which_file_and_why(here, cube_pc, model_tiny):
    import shutil

    text = here / "text"
    shutil.copytree(model_tiny, text)
    (text / "model.pt").write_text("hello, I am not a checkpoint\n")
    fill = ["fill", "--cube", str(cube_pc), "--out", "p.zarr", "--model", str(text)]
    _refused(here, fill, 2, "model.pt cannot be loaded: it is not a PyTorch checkpoint")
    train = ["train", "--cube", str(cube_pc), "--out", "r", "--config"]
    for name, body, needles in (
        ("list.yaml", "- 1\n- 2\n", ["holds a list, not a mapping of settings"]),
        ("key.yaml", "epochz: 3\n", ["epochz: Extra inputs are not permitted"]),
        ("type.yaml", "epochs: many\n", ["epochs: Input should be a valid integer"]),
        ("data.yaml", "data: [1]\n", ["data: Input should be a mapping"]),
    ):
        (here / name).write_text(body)
        _refused(here, [*train, name], 2, *needles)
    (here / "profile.yaml").write_text("s2:\n  collection: x\n  bogus: 1\n")
    search = ["search", "--aoi", AOI, *DAYS, "--stac-url", DEAD, "--profile", "profile.yaml"]
    _refused(here, search, 2, "profile.yaml is invalid: s2.bogus: Extra inputs are not permitted")


def test_stac_serve_without_the_server_extra_names_the_install(here, real_sample):
    """The `server` extra hidden from the import system (as if not installed)."""
    block = here / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('pypgstac', 'stac_fastapi'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(block)}
    _refused(here, ["stac", "serve", str(real_sample)], 2, "pip install 'gapfill[server]'", env=env)


@pytest.fixture
def http_answering():
    """A local HTTP server answering every request with the status it is told."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 500

        def do_GET(self) -> None:
            self.send_response(self.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"not": "stac"}' if self.status == 200 else b"upstream broke")

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_stac_url_answering_errors_or_not_stac_is_one_line(here, http_answering):
    handler, url = http_answering
    for status, needles in (
        (500, ["answered HTTP 500 after 3 retries", "try again later"]),
        (404, ["answered HTTP 404 (", "STAC API root"]),
        (200, ["did not answer as a STAC API", "give the root URL"]),
    ):
        handler.status = status
        _refused(here, ["search", "--aoi", AOI, *DAYS, "--stac-url", url], 3, *needles)


def test_paths_with_spaces_and_non_ascii_work_end_to_end(here, cube_pc, dask_address):
    """Not bad input: a product under "dir with space/ünï/" is written, opens with plain
    xarray, and its STAC Item points at it."""
    import json

    import xarray as xr

    out = here / "dir with space" / "ünï" / "p.zarr"
    args = ["fill", "--cube", str(cube_pc), "--method", "persistence", "--out", str(out)]
    proc = subprocess.run(
        [*GAPFILL, *args, "--dask-scheduler", dask_address, "--no-quicklooks"],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert bool(xr.open_zarr(out)["complete"].values.all())
    item = json.loads(out.with_name("p.item.json").read_text())
    assert any(a["href"] == "./p.zarr" for a in item["assets"].values())
