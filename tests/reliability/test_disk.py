"""The disk fills up, or turns read-only, while `gapfill fill` writes: one line saying
what happened and what to do, the store consistent (no day flagged complete that is not
whole), and the next run completes it. A real small tmpfs, where the machine lets us
mount one (root or CAP_SYS_ADMIN); otherwise skipped, with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gapfill.fill import FillConfig, fill, product

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PAGE = 4096


def _mount(point: Path, options: str, *, remount: bool = False) -> bool:
    cmd = ["mount", "-o", f"remount,{options}", str(point)] if remount else [
        "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    point = tmp_path / "disk"
    point.mkdir()
    if not _mount(point, "size=64k"):
        pytest.skip("cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _footprint(path: Path) -> int:
    """Bytes a folder takes on a tmpfs (whole pages per file)."""
    return sum(-(-p.stat().st_size // PAGE) * PAGE for p in path.rglob("*") if p.is_file())


def _values(path: Path) -> dict[str, np.ndarray]:
    ds = xr.open_zarr(path)
    return {n: ds[n].values for n in (*product.DAY_VARS, product.COMPLETE)}


def _fill_cli(
    cube: Path, out: Path, address: str | None, *extra: str
) -> subprocess.CompletedProcess:
    """`gapfill fill` on `address`, or on its own LocalCluster (whose workers must not
    print the failed task's traceback)."""
    argv = [
        sys.executable, "-m", "gapfill.cli", "fill", "--cube", str(cube), "--out", str(out),
        "--method", "persistence", "--no-quicklooks",
    ]  # fmt: skip
    if address:
        argv += ["--dask-scheduler", address]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=240)


def _one_line(proc: subprocess.CompletedProcess, *needles: str, code: int = 3) -> None:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("gapfill: error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]


def _consistent_with(out: Path, ref: dict[str, np.ndarray]) -> np.ndarray:
    """Every day the product flags complete equals the uninterrupted run's day."""
    got = _values(out)
    done = got[product.COMPLETE]
    for name in product.DAY_VARS:
        np.testing.assert_array_equal(got[name][done], ref[name][done], err_msg=name)
    return done


def test_disk_full_then_read_only_then_room_again(tmp_path, small_disk, cube_pc, dask_address):
    ref_path = tmp_path / "ref.zarr"
    fill(
        FillConfig(
            cube=str(cube_pc), out=str(ref_path), method="persistence", quicklooks=False
        ),
        dask_scheduler=dask_address,
    )  # fmt: skip
    ref = _values(ref_path)
    need = _footprint(ref_path) + _footprint(tmp_path / ".ref.zarr.locks")
    out = small_disk / "p.zarr"
    days = [str(t)[:10] for t in xr.open_zarr(cube_pc)["time"].values]

    # A first run with room fills the first days; then the disk has room for only about a
    # third of the rest, and the run over all days stops mid-way with one line. (A first
    # run that fails before any day is complete removes its product: nothing to check.)
    assert _mount(small_disk, f"size={need * 2}", remount=True)
    first = _fill_cli(cube_pc, out, dask_address, "--end", days[2])
    assert first.returncode == 0, first.stderr[-3000:]
    stat = os.statvfs(small_disk)
    used = (stat.f_blocks - stat.f_bfree) * stat.f_frsize
    assert _mount(small_disk, f"size={used + (need - used) // 3}", remount=True)
    _one_line(_fill_cli(cube_pc, out, None), "No space left on device", "run the same command")
    done = _consistent_with(out, ref)
    assert 3 <= done.sum() < len(done), done

    # Read-only (room again, but no write allowed): refused before any work, unchanged.
    assert _mount(small_disk, f"ro,size={need * 2}", remount=True)
    before = {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file()}
    proc = _fill_cli(cube_pc, out, dask_address)
    _one_line(proc, "is on a read-only file system", "choose another --out", code=2)
    assert {p: p.read_bytes() for p in small_disk.rglob("*") if p.is_file()} == before

    # Writable with room: the same command completes it, equal to the uninterrupted run.
    assert _mount(small_disk, f"rw,size={need * 2}", remount=True)
    proc = _fill_cli(cube_pc, out, dask_address)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = _values(out)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
