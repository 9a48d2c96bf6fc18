"""build-cube throughput vs its floor and vs odc-stac, and peak memory at 1x and 4x area.

One run, one synthetic world (default 4096^2 x 12 days), served by the local STAC API:

- gapfill: `build_cube` over the central quarter (1x) and the whole world (4x), through
  gapfill's own 2-worker LocalCluster (what `build-cube` starts without a scheduler);
  peak RSS is the client plus its workers, sampled (not the STAC server's processes);
  the build's own seconds per phase and the workers' compute seconds per kind of task.
- floor (1x): the same work with no framework: rasterio windowed reads of the same COG
  bytes (S2 bands — a 20 m band's window read bilinearly onto the chunk's 10 m pixels by
  GDAL's RasterIO —, SCL, S1 candidates) on 2 threads, the same packing, masks and S1
  matching in numpy, and zarr-python writes of the same chunks.
- `--bands` (default: the default ten) is the band set of both; bytes on disk per band
  and day are those of the 1x cube's `s2`.
- loaders (1x): the S2 bands of every day read onto the grid (lazy, whole grid) by
  gapfill's direct engine, by stackstac and by odc-stac, on the same cluster.

Floor and gapfill alternate which runs first, `--repeat` times; the JSON keeps every run
and the medians.

Usage: python benchmarks/cube_build.py [--world DIR] [--size 4096] [--dates 12] [--repeat 3]
                                     [--bands default]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402

CHUNK = 1024


class _PeakRSS:
    """Samples the summed RSS of some processes (this one, plus the Dask workers)."""

    def __init__(self, pids: list[int] | None = None, interval: float = 0.2) -> None:
        self.pids = pids or []
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _run(self) -> None:
        procs = [psutil.Process()] + [psutil.Process(p) for p in self.pids]
        while not self._stop.is_set():
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> _PeakRSS:
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def _worker_pids(address: str) -> list[int]:
    import os

    from distributed import Client

    with Client(address) as client:
        return sorted(client.run(os.getpid).values())


def _aoi(meta: dict, fraction: float) -> tuple[str, tuple[float, float, float, float]]:
    """Lon/lat WKT of the central `fraction` (per side) of the world, and its UTM box."""
    from gapfill.grid import inset_lonlat_wkt

    minx, miny, maxx, maxy = meta["bounds"]
    w = (maxx - minx) * fraction
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    box = [cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2]
    return inset_lonlat_wkt(box, meta["epsg"]), (box[0], box[1], box[2], box[3])


def _floor(
    world: Path, meta: dict, box: tuple[float, float, float, float], out: Path, bands: tuple
) -> dict:
    """Read the same bytes with rasterio windows, do the same numpy work, write with zarr."""
    from datetime import datetime, timedelta

    import rasterio
    import zarr
    from rasterio.enums import Resampling
    from rasterio.windows import from_bounds
    from scipy import ndimage

    from gapfill.bands import band_resolution

    size = int(round((box[2] - box[0]) / 10))
    root = zarr.open_group(str(out), mode="w", zarr_format=3)
    nt, nb = len(meta["s2"]), len(bands)
    s2 = root.create_array(
        "s2",
        shape=(nt, nb, size, size),
        chunks=(1, nb, CHUNK, CHUNK),
        dtype="uint16",
        fill_value=0,
    )
    clear = root.create_array(
        "clear", shape=(nt, size, size), chunks=(1, CHUNK, CHUNK), dtype="bool"
    )
    s1 = root.create_array(
        "s1",
        shape=(nt, 2, size, size),
        chunks=(1, 2, CHUNK, CHUNK),
        dtype="int16",
        fill_value=-32768,
    )
    disk = np.add.outer(np.arange(-2, 3) ** 2, np.arange(-2, 3) ** 2) <= 4

    def when(s: dict) -> datetime:
        return datetime.fromisoformat(s["datetime"].rstrip("Z"))

    def read(path: Path, y0: int, x0: int, n: int, factor: int = 1, up: bool = False) -> np.ndarray:
        """The chunk's window; `up`: a coarser asset's window read onto the chunk's n x n
        pixels bilinearly (else its own pixels)."""
        with rasterio.open(path) as ds:
            win = from_bounds(*box, transform=ds.transform).round_offsets().round_lengths()
            win = rasterio.windows.Window(
                win.col_off + x0 // factor, win.row_off + y0 // factor, n // factor, n // factor
            )
            if up:
                return ds.read(1, window=win, out_shape=(n, n), resampling=Resampling.bilinear)
            return ds.read(1, window=win)

    def one(task: tuple[int, int, int]) -> None:
        t, y0, x0 = task
        day = meta["s2"][t]
        n = min(CHUNK, size - y0)
        d = world / "s2" / day["id"]
        dn = np.stack(
            [
                read(d / f"{b}.tif", y0, x0, n, band_resolution(b) // 10, band_resolution(b) > 10)
                for b in bands
            ]
        )
        scl = np.repeat(np.repeat(read(d / "SCL.tif", y0, x0, n, 2), 2, 0), 2, 1)
        refl = np.where(dn == 0, np.nan, (dn.astype(np.float32) - 1000) / 10000)
        cloudy = ndimage.binary_dilation(np.isin(scl, (3, 8, 9, 10)), structure=disk)
        ok = np.isfinite(refl).all(0)
        s2[t, :, y0 : y0 + n, x0 : x0 + n] = np.where(
            ok, np.round(np.clip(refl, 1e-4, 6.5) * 1e4), 0
        )
        clear[t, y0 : y0 + n, x0 : x0 + n] = np.isin(scl, (4, 5, 6, 7)) & ok & ~cloudy
        t2 = when(day)
        cands = sorted(
            (s for s in meta["s1"] if abs(when(s) - t2) <= timedelta(days=5)),
            key=lambda s: abs(when(s) - t2),
        )
        out_db = np.full((2, n, n), np.nan, np.float32)
        for s in reversed(cands):
            lin = np.stack(
                [read(world / "s1" / s["id"] / f"{p}.tif", y0, x0, n) for p in ("vv", "vh")]
            )
            good = (lin > 0).all(0)
            out_db[:, good] = 10 * np.log10(lin[:, good])
        s1[t, :, y0 : y0 + n, x0 : x0 + n] = np.where(
            np.isfinite(out_db), np.round(out_db * 100), -32768
        )

    tasks = [
        (t, y0, x0)
        for t in range(nt)
        for y0 in range(0, size, CHUNK)
        for x0 in range(0, size, CHUNK)
    ]
    t0 = time.perf_counter()
    with _PeakRSS() as rss, ThreadPoolExecutor(2) as pool:
        list(pool.map(one, tasks))
    return {
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mb": rss.peak / 2**20,
        "chunks": len(tasks),
    }


def _task_seconds(stream: list[dict]) -> dict[str, float]:
    """Worker compute seconds per kind of Dask task (its key prefix), largest first."""
    from dask.utils import key_split

    total: dict[str, float] = {}
    for task in stream:
        for ss in task["startstops"]:
            if ss["action"] == "compute":
                name = key_split(task["key"])
                total[name] = total.get(name, 0.0) + ss["stop"] - ss["start"]
    return {k: round(v, 2) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def _gapfill(url: str, aoi: str, meta: dict, out: Path, bands: tuple) -> dict:
    """One build on a fresh 2-worker gapfill LocalCluster (what `build-cube` starts), its
    workers warmed (gapfill imported) before the clock starts: peak memory is that of
    this build, not of the runs before it in the same workers."""
    from distributed import Client

    from gapfill.cluster import local_cluster

    with local_cluster(2) as cluster:
        with Client(cluster.scheduler_address) as client:
            client.run(lambda: __import__("gapfill.cube.build"))
            pids = sorted(client.run(os.getpid).values())
        return _timed_build(url, aoi, meta, out, cluster.scheduler_address, pids, bands)


def _timed_build(
    url: str, aoi: str, meta: dict, out: Path, address: str, pids: list[int], bands: tuple
) -> dict:
    from distributed import Client, get_task_stream

    from gapfill.cube import CubeConfig, build_cube

    cfg = CubeConfig(
        aoi=aoi,
        start=meta["s2"][0]["datetime"][:10],
        end=meta["s2"][-1]["datetime"][:10],
        stac_url=url,
        chunk=CHUNK,
        bands=bands,
    )
    with Client(address) as client, get_task_stream(client) as stream:
        t0 = time.perf_counter()
        with _PeakRSS(pids) as rss:
            report = build_cube(out, cfg, dask_scheduler=address)
        wall = time.perf_counter() - t0
    s2_bytes = sum(f.stat().st_size for f in (out / "s2").rglob("*") if f.is_file())
    return {
        "wall_s": wall,
        "peak_rss_mb": rss.peak / 2**20,
        "s2_bytes_per_band_day": round(s2_bytes / (len(report.days_written) * len(bands))),
        "days": len(report.days_written),
        "phase_s": {k: round(v, 2) for k, v in report.seconds.items()},
        "worker_compute_s_by_task": _task_seconds(stream.data),
    }


def _loaders(url: str, aoi: str, address: str) -> dict:
    """S2 bands of every day on the 1x grid: stackstac (gapfill's loader) vs odc-stac."""
    import odc.stac
    from distributed import Client

    from gapfill.bands import DEFAULT_BANDS
    from gapfill.cube import cube_grid
    from gapfill.cube.loader import load, stac_dicts
    from gapfill.grid import parse_aoi, parse_date_range
    from gapfill.stac import profiles_for, search

    s2p, s1p = profiles_for(stac_url=url)
    area = parse_aoi(aoi)
    grid = cube_grid(area, 10.0, None)
    found = search(area, parse_date_range("2000-01-01", "2100-01-01"), s2p, s1p)
    bands = list(DEFAULT_BANDS)  # nearest for all: the three loaders read the same
    out = {}
    with Client(address):
        t0 = time.perf_counter()
        direct = load(stac_dicts(found.s2), bands, grid, CHUNK).compute()
        out["direct_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        a = load(stac_dicts(found.s2), bands, grid, CHUNK, engine="stackstac").compute()
        out["stackstac_s"] = time.perf_counter() - t0
        from odc.geo.geobox import GeoBox

        gb = GeoBox.from_bbox(grid.bounds, crs=f"EPSG:{grid.epsg}", resolution=grid.resolution)
        # pystac resolves "/path" hrefs against the API's http links: drop the links.
        import pystac

        items = [
            pystac.Item.from_dict({**i.to_dict(transform_hrefs=False), "links": []})
            for i in found.s2
        ]
        t0 = time.perf_counter()
        b = odc.stac.load(
            items,
            bands=bands,
            geobox=gb,
            chunks={"x": CHUNK, "y": CHUNK},
            groupby="id",
            resampling="nearest",
            dtype="float32",
            nodata=np.nan,
        ).compute()
        out["odc_stac_s"] = time.perf_counter() - t0
    va = a.values
    vb = np.stack([b[band].values for band in bands], axis=1)
    vb = np.where(vb == 0, np.nan, vb)  # odc-stac keeps nodata DN 0
    out["identical_values"] = bool(
        np.array_equal(va, vb, equal_nan=True) and np.array_equal(direct.values, va, equal_nan=True)
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=Path, default=None)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--dates", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bands", default="default")
    a = ap.parse_args()
    from gapfill.bands import parse_bands

    bands = parse_bands(a.bands)
    from gapfill.cluster import local_cluster
    from gapfill.stac import local_stac_api
    from gapfill.synth import WorldSpec, make_world

    tmp = Path(tempfile.mkdtemp(prefix="gapfill-cube-bench-"))
    world = a.world
    if world is None:
        world = tmp / "world"
        make_world(world, WorldSpec(size=a.size, dates=a.dates, seed=1))
    meta = json.loads((world / "world.json").read_text())
    aoi1, box1 = _aoi(meta, 0.5)
    aoi4, _ = _aoi(meta, 1.0)
    runs = []
    try:
        with local_stac_api([world]) as api:
            for r in range(a.repeat):
                # Floor and gapfill alternate which goes first, so neither always meets a
                # warm (or cold) page cache and cluster.
                run: dict = {}
                for which in ("gapfill", "floor") if r % 2 == 0 else ("floor", "gapfill"):
                    if which == "gapfill":
                        run["gapfill_1x"] = _gapfill(
                            api.url, aoi1, meta, tmp / f"g1-{r}.zarr", bands
                        )
                    else:
                        run["floor_1x"] = _floor(world, meta, box1, tmp / f"floor-{r}.zarr", bands)
                run["gapfill_4x_area"] = _gapfill(api.url, aoi4, meta, tmp / f"g4-{r}.zarr", bands)
                with local_cluster(2) as cluster:
                    run["loaders_1x_s2_bands"] = _loaders(api.url, aoi1, cluster.scheduler_address)
                runs.append(run)
                for stale in tmp.glob(f"*-{r}.zarr"):
                    shutil.rmtree(stale, ignore_errors=True)
                print(json.dumps(run), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def med(part: str, key: str) -> float:
        return round(statistics.median(x[part][key] for x in runs), 3)

    side = int(meta["spec"]["size"])
    mpix = (side // 2) ** 2 * len(meta["s2"]) / 1e6
    g1, f1, g4 = (
        med("gapfill_1x", "wall_s"),
        med("floor_1x", "wall_s"),
        med("gapfill_4x_area", "wall_s"),
    )
    rss1, rss4 = med("gapfill_1x", "peak_rss_mb"), med("gapfill_4x_area", "peak_rss_mb")
    path = write_result(
        "cube_build",
        {
            "command": "benchmarks/cube_build.py " + " ".join(sys.argv[1:]),
            "world": {"size": side, "dates": len(meta["s2"]), "s1_scenes": len(meta["s1"])},
            "chunk": CHUNK,
            "bands": list(bands),
            "repeat": a.repeat,
            "s2_bytes_per_band_day": med("gapfill_1x", "s2_bytes_per_band_day"),
            "runs": runs,
            "median_s": {
                "gapfill_1x": g1,
                "floor_1x": f1,
                "gapfill_4x_area": g4,
                "direct_loader": med("loaders_1x_s2_bands", "direct_s"),
                "stackstac_loader": med("loaders_1x_s2_bands", "stackstac_s"),
                "odc_stac_loader": med("loaders_1x_s2_bands", "odc_stac_s"),
            },
            "median_peak_rss_mb": {"gapfill_1x": rss1, "gapfill_4x_area": rss4},
            "s2_mpix_day_per_s": {
                "gapfill_1x": round(mpix / g1, 2),
                "floor_1x": round(mpix / f1, 2),
            },
            "throughput_ratio_gapfill_vs_floor": round(f1 / g1, 3),
            "peak_rss_ratio_4x_vs_1x": round(rss4 / rss1, 3),
            "time_ratio_4x_vs_1x": round(g4 / g1, 3),
            "loaders_time_ratio_vs_direct": {
                "stackstac": round(
                    med("loaders_1x_s2_bands", "stackstac_s")
                    / med("loaders_1x_s2_bands", "direct_s"),
                    2,
                ),
                "odc_stac": round(
                    med("loaders_1x_s2_bands", "odc_stac_s")
                    / med("loaders_1x_s2_bands", "direct_s"),
                    2,
                ),
            },
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
