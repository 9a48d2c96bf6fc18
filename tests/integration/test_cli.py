"""The `gapfill` command as a user runs it: output, exit codes, one-line errors."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import world_meta

pytestmark = pytest.mark.integration

GAPFILL = [sys.executable, "-m", "gapfill.cli"]


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*GAPFILL, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("gapfill: error: ")
    for n in needles:
        assert n in lines[0], lines[0]


BASE = ["--start", "2022-04-01", "--end", "2022-04-30"]


@pytest.mark.parametrize(
    "args, needles",
    [
        (
            ["search", "--aoi", "POLYGON((0 0, 1 1, 1 0, 0 1, 0 0))", *BASE],
            ["not a valid geometry"],
        ),
        (["search", "--aoi", "POINT (1 1)", *BASE], ["zero area"]),
        (
            ["search", "--aoi", "1,1,2,2", "--start", "2022-05-01", "--end", "2022-04-01"],
            ["before start"],
        ),
        (
            ["search", "--aoi", "1,1,2,2", *BASE, "--provider", "sentinelhub"],
            ["unknown S2 provider"],
        ),
        (
            ["search", "--aoi", "1,1,2,2", *BASE, "--s1-provider", "earth-search"],
            ["radar geometry"],
        ),
        (
            ["search", "--aoi", "1,1,2,2", *BASE, "--stac-url", "http://127.0.0.1:9"],
            ["could not reach", "connection refused"],
        ),
        (["search", "--aoi", "1,1,2,2"], ["Missing option"]),
        (
            [
                "search",
                "--aoi",
                "1,1,2,2",
                *BASE,
                "--max-cloud",
                "120",
                "--stac-url",
                "http://127.0.0.1:9",
            ],
            ["percentage"],
        ),
        (["stac", "serve", "/nonexistent-dir"], ["no catalog.json"]),
        (["synth", "world", "/tmp/x", "--size", "63"], ["size"]),
        (["synth", "world", "/tmp/x", "--landscape", "moon"], ["landscape"]),
        (["synth", "stats", "/tmp"], ["world.json"]),
        (["search", "--aoi", "1,1,2,2", *BASE, "--log-level", "LOUD"], ["log level"]),
        (["demo", "--real", "/nonexistent", "--out", "/tmp/gapfill-demo-bad"], ["real sample"]),
    ],
)
def test_bad_input_gives_one_clear_line(args, needles):
    assert_one_line_error(run(*args), *needles)


def test_unreachable_url_fails_within_bounded_time():
    t0 = time.monotonic()
    proc = run("search", "--aoi", "1,1,2,2", *BASE, "--stac-url", "http://127.0.0.1:9")
    assert proc.returncode == 3
    assert time.monotonic() - t0 < 30


def test_search_prints_a_table_and_json(stac_api, world_pc):
    meta = world_meta(world_pc)
    aoi = ",".join(str(v) for v in meta["bbox_lonlat"])
    start, end = meta["s2"][0]["datetime"][:10], meta["s2"][-1]["datetime"][:10]
    table = run("search", "--aoi", aoi, "--start", start, "--end", end, "--stac-url", stac_api.url)
    assert table.returncode == 0, table.stderr
    assert meta["s2"][0]["id"] in table.stdout and "12 Sentinel-2 items on 12 days" in table.stdout
    out = run(
        "search",
        "--aoi",
        aoi,
        "--start",
        start,
        "--end",
        end,
        "--stac-url",
        stac_api.url,
        "--max-cloud",
        "50",
        "--json",
    )
    data = json.loads(out.stdout)
    s2 = [r for r in data["items"] if r["sensor"] == "S2"]
    assert s2 and all(r["cloud_cover"] < 50 for r in s2)
    assert len(s2) == sum(d["eo:cloud_cover"] < 50 for d in meta["s2"])
    assert {r["relative_orbit"] for r in data["items"] if r["sensor"] == "S1"} == {11, 113}


def test_synth_world_and_stats_commands(tmp_path):
    out = tmp_path / "w"
    made = run(
        "synth",
        "world",
        str(out),
        "--size",
        "64",
        "--dates",
        "3",
        "--landscape",
        "mountain-arid",
        "--s2-conventions",
        "earth-search",
    )
    assert made.returncode == 0, made.stderr
    assert (out / "catalog.json").is_file() and (out / "truth" / "index.json").is_file()
    again = run("synth", "world", str(out), "--size", "64", "--dates", "3")
    assert_one_line_error(again, "not empty")
    stats = run("synth", "stats", str(out), "--json")
    assert json.loads(stats.stdout)["dates"] == 3


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _serve(world: Path, port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*GAPFILL, "stac", "serve", str(world), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("STAC API: http://127.0.0.1:"), line + proc.stderr.read()
    return proc, line.split()[2]


def _postgres_children(proc: subprocess.Popen) -> list[psutil.Process]:
    """The PostgreSQL processes this server started (its own descendants only: other
    servers on the machine, other test sessions' too, are none of this test's business)."""
    kids = psutil.Process(proc.pid).children(recursive=True)
    return [p for p in kids if _is_postmaster(p)]


def _is_postmaster(p: psutil.Process) -> bool:
    """A PostgreSQL server (with its data folder), not initdb's short-lived bootstrap."""
    try:
        return p.name() == "postgres" and "-D" in p.cmdline()
    except psutil.Error:  # it ended while we looked
        return False


def test_serve_stops_cleanly_on_sigterm(world_pc):
    """`--port 0` takes a free port and says which (it used to poll port 0 for 60 s)."""
    proc, url = _serve(world_pc, 0)
    port = int(url.rsplit(":", 1)[1])
    assert httpx.get(f"{url}/collections").status_code == 200
    started = _postgres_children(proc)
    assert started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "stopped" in proc.stdout.read()
    assert not _port_open(port)
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive


def test_sigterm_during_start_up_stops_it_at_once(world_pc):
    """A scheduler stopping a server that is still loading: it does not finish starting
    first; PostgreSQL is stopped and its folder removed."""
    proc = subprocess.Popen(
        [*GAPFILL, "stac", "serve", str(world_pc), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (started := _postgres_children(proc)):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    cmd = started[0].cmdline()
    data_dir = Path(cmd[cmd.index("-D") + 1])
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.monotonic() - t0 < 10, err[-2000:]
    assert "STAC API:" not in out
    assert err.strip().splitlines()[-1].startswith("gapfill: interrupted")
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not alive and not data_dir.exists()


def test_serve_refuses_a_port_in_use_and_starts_nothing(world_pc):
    """Watched from its start: the refused server never had a child process (no
    PostgreSQL), whatever else runs on the machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cmd = [*GAPFILL, "stac", "serve", str(world_pc), "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children: set[int] = set()
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                children |= {c.pid for c in watched.children(recursive=True)}
            time.sleep(0.01)
        out, err = proc.communicate(timeout=60)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        assert_one_line_error(done, f"port {port}", "in use")
        assert not children


def test_a_killed_server_leaves_nothing_running(world_pc):
    from gapfill.stac.server import free_port

    port = free_port()
    proc, url = _serve(world_pc, port)
    started = _postgres_children(proc)
    assert started
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _, alive = psutil.wait_procs(started, timeout=20)
    assert not alive
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _port_open(port):
        time.sleep(0.2)
    assert not _port_open(port)
