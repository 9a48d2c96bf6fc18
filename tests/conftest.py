"""Session-scoped fixtures: synthetic worlds, the real sample and one local STAC API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from gapfill.bands import DEFAULT_BANDS
from gapfill.demo import default_real_sample
from gapfill.synth import WorldSpec, make_world

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def real_sample() -> Path:
    path = default_real_sample()
    assert (path / "catalog.json").is_file(), f"real sample missing at {path}"
    return path


@pytest.fixture(scope="session")
def real_sites(real_sample: Path) -> dict[str, Path]:
    """The three real places (shared/data/real): A (Flanders, 10 m and 20 m bands), C
    (Flanders) and D (near Arusha, Tanzania), both 20 m bands only."""
    root = real_sample.parent
    sites = {
        "A": real_sample,
        "C": root / "worldcereal-31UES-C",
        "D": root / "worldcereal-37MBS-D",
    }
    for name, path in sites.items():
        assert (path / "catalog.json").is_file(), f"real site {name} missing at {path}"
    return sites


def site_square(site: Path) -> tuple[int, tuple[float, float, float, float]]:
    """(EPSG, bounds) of a real site's 640 m square, from its first S2 item's SCL asset."""
    items = sorted((site / "sentinel-2-l2a").glob("*/*.json"))
    item = json.loads(items[0].read_text())
    scl = item["assets"]["SCL"]
    a, _, c, _, e, f = scl["proj:transform"][:6]
    h, w = scl["proj:shape"]
    epsg = item["properties"].get("proj:epsg") or int(item["properties"]["proj:code"][5:])
    return int(epsg), (c, f + e * h, c + a * w, f)


@pytest.fixture(scope="session")
def world_pc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px flat-agri world, Planetary Computer conventions, 12 dates."""
    out = tmp_path_factory.mktemp("worlds") / "flat-pc"
    make_world(out, WorldSpec(size=64, dates=12, seed=0))
    return out


@pytest.fixture(scope="session")
def world_es(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 px mountain-arid world, Earth Search conventions, 6 dates."""
    out = tmp_path_factory.mktemp("worlds") / "mountain-es"
    make_world(
        out,
        WorldSpec(
            size=64, dates=6, seed=3, landscape="mountain-arid", s2_conventions="earth-search"
        ),
    )
    return out


@pytest.fixture(scope="session")
def world_broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world (its own dates) whose second day has a truncated B04 COG."""
    from datetime import date

    out = tmp_path_factory.mktemp("worlds") / "broken"
    make_world(
        out, WorldSpec(size=64, dates=3, seed=9, landscape="mountain-arid", start=date(2023, 3, 1))
    )
    item_id = world_meta(out)["s2"][1]["id"]
    cog = out / "s2" / item_id / "B04.tif"
    data = cog.read_bytes()
    cog.write_bytes(data[: len(data) // 2])
    return out


SAS_SECRET = "c2VjcmV0LXNpZ25hdHVyZQ%3D%3D"


@pytest.fixture(scope="session")
def world_faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 5-day world (its own dates) with what real archives serve now and then: every
    day all cloud (SCL 9); day 1 lacks its B03 asset, day 2's B08 href leads nowhere,
    day 3's B02 holds floats (reflectance scaled to 0..1) instead of digital numbers,
    day 4's B02 is a signed URL (a SAS token) of a server that does not answer."""
    from datetime import date

    import numpy as np
    import rasterio

    out = tmp_path_factory.mktemp("worlds") / "faulty"
    make_world(out, WorldSpec(size=64, dates=5, seed=13, start=date(2023, 8, 1)))
    ids = [s["id"] for s in world_meta(out)["s2"]]

    def rewrite(cog: Path, dtype: str, values: Callable[[np.ndarray], np.ndarray]) -> None:
        with rasterio.open(cog) as src:
            profile, data = src.profile, src.read()
        profile.update(dtype=dtype, nodata=None)
        with rasterio.open(cog, "w", **profile) as dst:
            dst.write(values(data).astype(dtype))

    for item_id in ids:
        rewrite(out / "s2" / item_id / "SCL.tif", "uint8", lambda scl: np.full_like(scl, 9))

    def edit_item(item_id: str, edit: Callable[[dict], None]) -> None:
        path = out / "sentinel-2-l2a" / item_id / f"{item_id}.json"
        item = json.loads(path.read_text())
        edit(item["assets"])
        path.write_text(json.dumps(item))

    edit_item(ids[1], lambda assets: assets.pop("B03"))
    # Shell syntax in an href is data: nothing may run it.
    edit_item(ids[2], lambda assets: assets["B08"].update(href="./$(touch pwned)/B08.tif"))
    rewrite(out / "s2" / ids[3] / "B02.tif", "float32", lambda dn: dn / 1e4)
    signed = f"http://127.0.0.1:9/B02.tif?se=2030-01-01&sp=r&sig={SAS_SECRET}"
    edit_item(ids[4], lambda assets: assets["B02"].update(href=signed))
    return out


@pytest.fixture(scope="session")
def catalogs(
    world_pc: Path,
    world_es: Path,
    world_broken: Path,
    world_faulty: Path,
    real_sites: dict[str, Path],
) -> list[Path]:
    return [world_pc, world_es, world_broken, world_faulty, *real_sites.values()]


@pytest.fixture(scope="session")
def stac_api(catalogs: list[Path]):
    """One real stac-fastapi-pgstac for the session, serving the worlds and the real sample."""
    from gapfill.stac import local_stac_api

    with local_stac_api(catalogs) as api:
        yield api


@pytest.fixture(scope="session")
def dask_address():
    """One real Dask LocalCluster (2 worker processes) for the session."""
    from gapfill.cluster import local_cluster

    with local_cluster(2) as cluster:
        yield cluster.scheduler_address


def inset_aoi(world: Path, inset_m: float = 5.0) -> str:
    """WKT (lon/lat) of a world's square, inset so the cube grid snaps to exactly it."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import box

    meta = world_meta(world)
    minx, miny, maxx, maxy = meta["bounds"]
    square = box(minx + inset_m, miny + inset_m, maxx - inset_m, maxy - inset_m).segmentize(20)
    to_lonlat = Transformer.from_crs(meta["epsg"], 4326, always_xy=True)
    return shapely.transform(square, to_lonlat.transform, interleaved=False).wkt


def world_meta(world: Path) -> dict:
    return json.loads((world / "world.json").read_text())


def load_item(name: str) -> dict:
    return json.loads((DATA / "items" / name).read_text())


CHUNK = 32


def cube_config(world: Path, url: str, **kw):
    """A CubeConfig covering a whole world, chunked small so that chunk edges are tested."""
    from gapfill.cube import CubeConfig

    meta = world_meta(world)
    base = dict(
        aoi=inset_aoi(world),
        start=meta["s2"][0]["datetime"][:10],
        end=meta["s2"][-1]["datetime"][:10],
        stac_url=url,
        chunk=CHUNK,
    )
    return CubeConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def cube_pc(tmp_path_factory, world_pc, stac_api, dask_address) -> Path:
    """The cube of the 64 px flat-agri world, built once."""
    from gapfill.cube import build_cube

    out = tmp_path_factory.mktemp("cubes") / "pc.zarr"
    build_cube(out, cube_config(world_pc, stac_api.url), dask_scheduler=dask_address)
    return out


REAL_BOUNDS = (501360.0, 5629040.0, 502000.0, 5629680.0)


def real_aoi() -> str:
    """WKT (lon/lat) of the real sample's 64 px square, inset so the grid snaps to it."""
    import shapely
    from pyproj import Transformer
    from shapely.geometry import box

    minx, miny, maxx, maxy = REAL_BOUNDS
    square = box(minx + 5, miny + 5, maxx - 5, maxy - 5).segmentize(20)
    to_lonlat = Transformer.from_crs(32631, 4326, always_xy=True)
    return shapely.transform(square, to_lonlat.transform, interleaved=False).wkt


@pytest.fixture(scope="session")
def cube_real(tmp_path_factory, stac_api, dask_address) -> Path:
    """The cube of the real sample (118 S2 days, 64 px), built once."""
    from gapfill.cube import CubeConfig, build_cube

    out = tmp_path_factory.mktemp("cubes") / "real.zarr"
    cfg = CubeConfig(
        aoi=real_aoi(),
        start="2017-08-01",
        end="2018-11-30",
        stac_url=stac_api.url,
        chunk=64,
        batch_days=16,
    )
    build_cube(out, cfg, dask_scheduler=dask_address)
    return out


@pytest.fixture(scope="session")
def cube_es(tmp_path_factory, world_es, stac_api, dask_address) -> Path:
    """The cube of the 64 px mountain-arid world (Earth Search conventions, UTM 38N)."""
    from gapfill.cube import build_cube

    out = tmp_path_factory.mktemp("cubes") / "es.zarr"
    build_cube(out, cube_config(world_es, stac_api.url), dask_scheduler=dask_address)
    return out


def untrained_model(
    method: str = "mtcnn", preset: str = "test-tiny", seed: int = 0, bands=DEFAULT_BANDS
):
    """A seeded, untrained generator in eval() and its card, for cubes of `bands` (the
    default ten, as the test cubes hold)."""
    import torch

    from gapfill.models import build_generator, get_method, input_channels, receptive_field
    from gapfill.models.card import ModelCard
    from gapfill.normalize import Normalisation

    torch.manual_seed(seed)
    g = build_generator(method, preset, bands=bands).eval()
    m = get_method(method)
    card = ModelCard(
        method=method,
        task=m.task,
        preset=preset,
        generator=g.cfg,
        input_channels=input_channels(m.task, bands=bands),
        bands=bands,
        normalisation=Normalisation().for_bands(bands),
        receptive_field_px=receptive_field(g),
        seed=seed,
    )
    return g, card


def untrained_both_model(lookahead_days: int = 60, bands=DEFAULT_BANDS):
    """An untrained test-tiny MTCNN reading both sides (rule `both`) and its card."""
    import torch

    from gapfill.cube.reference import ReferenceRule
    from gapfill.models import build_generator, input_channels, receptive_field

    _, card = untrained_model(bands=bands)
    torch.manual_seed(0)
    gb = build_generator("mtcnn", "test-tiny", both=True, bands=card.bands).eval()
    return gb, card.model_copy(
        update={
            "generator": gb.cfg,
            "input_channels": input_channels("B", both=True, bands=card.bands),
            "receptive_field_px": receptive_field(gb),
            "reference": ReferenceRule(rule="both", lookahead_days=lookahead_days),
        }
    )


def save_untrained_model(
    run_dir: Path,
    method: str = "mtcnn",
    preset: str = "test-tiny",
    seed=0,
    bands=DEFAULT_BANDS,
):
    """A run directory holding a seeded, untrained generator and its card: what fill tests
    need (tiling, flags, resume), without the minutes of training."""
    from gapfill.models.card import save_model

    return save_model(run_dir, *untrained_model(method, preset, seed, bands))


@pytest.fixture(scope="session")
def model_tiny(tmp_path_factory) -> Path:
    """An untrained MTCNN test-tiny run directory."""
    return save_untrained_model(tmp_path_factory.mktemp("runs") / "mtcnn-tiny")


def signal_midway(
    proc: subprocess.Popen,
    sig: int,
    started: Callable[[], bool],
    *,
    group: bool = False,
    timeout: float = 120.0,
) -> tuple[float, list[psutil.Process]]:
    """Send `sig` to a CLI run once `started()` says it is mid-way (to its whole process
    group with `group`, as a terminal's Ctrl-C does; the run must have been started with
    `start_new_session=True`). Returns the seconds it took to exit and the processes it
    had started."""
    deadline = time.monotonic() + timeout
    while not started():
        assert proc.poll() is None, "the run ended before it could be signalled mid-way"
        assert time.monotonic() < deadline, "the run never got mid-way"
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    proc.wait(timeout=60)
    return time.monotonic() - t0, children


def assert_clean_interrupt(
    proc: subprocess.Popen, stderr: str, seconds: float, children: list[psutil.Process]
) -> None:
    """Ctrl-C: exit 130 within seconds, one line saying how to resume, no traceback, and
    every process the run started (cluster workers, Ray) gone."""
    assert proc.returncode == 130, stderr[-3000:]
    assert seconds < 20, f"took {seconds:.1f} s to stop"
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("gapfill: interrupted: ") and "resume" in last, stderr[-3000:]
    assert "Traceback" not in _without_ray_overload_warning(stderr), stderr[-3000:]
    _, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, [p.info if hasattr(p, "info") else p for p in alive]


def _without_ray_overload_warning(stderr: str) -> str:
    """Ray Train's controller logs a warning with a traceback when its autoscaler request
    takes over 5 s, "safe to ignore ... CPU being overloaded" (it is, on 2 cores): drop
    that block, and only that one, from a check for tracebacks."""
    return re.sub(
        r"[^\n]*Failed to send resource request.*?GetTimeoutError[^\n]*\n", "", stderr, flags=re.S
    )


class ObjectStore:
    """A bucket on a local S3-compatible server (moto), and a filesystem to look into it."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        import pyarrow.fs as pafs

        self.endpoint, self.bucket = endpoint, bucket
        self.fs = pafs.S3FileSystem(
            access_key="testing", secret_key="testing", endpoint_override=endpoint, scheme="http"
        )

    def url(self, prefix: str, bucket: str | None = None) -> str:
        """The URL a user passes as --checkpoints (credentials and endpoint in the URL)."""
        where = f"{bucket or self.bucket}/{prefix}"
        return f"s3://testing:testing@{where}?endpoint_override={self.endpoint}&scheme=http"

    def options(self, secret: str = "testing") -> dict:
        """s3fs storage_options for this server (moto takes any secret)."""
        return {"endpoint_url": f"http://{self.endpoint}", "key": "testing", "secret": secret}

    def keys(self, prefix: str) -> list[str]:
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(
            f"{self.bucket}/{prefix}", recursive=True, allow_not_found=True
        )
        infos = self.fs.get_file_info(selector)
        return [i.path for i in infos if i.type == pafs.FileType.File]


@pytest.fixture(scope="session")
def object_store():
    """An S3 API on localhost (moto's server over HTTP) with one empty bucket."""
    import logging

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    store = ObjectStore(f"{host}:{port}", "gapfill-runs")
    pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=store.endpoint,
        scheme="http",
        allow_bucket_creation=True,
    ).create_dir(store.bucket)
    yield store
    server.stop()
