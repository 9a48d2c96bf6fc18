"""The paper's three regions as synthetic worlds, served by the local STAC API, built
into cubes by `build-cube`.

Region 1 is unlike the others, like the paper's Iraq site: mountains, arid soil, a snow
line moving through the season, construction and flooding events. Regions 2 and 3 are
flat agricultural land at two places (like Jianghan and Xiangyang). Each has its own
seed and dates. Every model is trained on a region's west half and tested on an east
half (the paper's split by area).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import typer

from gapfill.grid import east_half, inset_lonlat_wkt, parse_aoi

__all__ = ["Region", "REGIONS", "make_worlds", "build_cubes", "held_out_area", "world_meta"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Region:
    """One region of the experiment and the paper's site it stands for."""

    key: str
    paper_name: str
    landscape: str
    site: str | None
    seed: int
    start: date


REGIONS: dict[str, Region] = {
    r.key: r
    for r in (
        Region("r1", "Iraq", "mountain-arid", None, 101, date(2022, 3, 29)),
        Region("r2", "Jianghan", "flat-agri", None, 102, date(2022, 4, 3)),
        Region("r3", "Xiangyang", "flat-agri", "flat-agri-north", 103, date(2022, 4, 8)),
    )
}


def make_worlds(out: Path, size: int, dates: int) -> dict[str, Path]:
    """Each region's world under OUT/worlds/ (kept when its spec is unchanged)."""
    from gapfill.synth import WorldSpec, make_world

    worlds = {}
    for r in REGIONS.values():
        spec = WorldSpec(
            size=size,
            dates=dates,
            seed=r.seed,
            landscape=r.landscape,
            site=r.site,
            start=r.start,
        )
        folder = out / "worlds" / r.key
        meta = folder / "world.json"
        worlds[r.key] = folder
        if meta.is_file():
            if WorldSpec.model_validate(json.loads(meta.read_text())["spec"]) == spec:
                continue
        folder.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        make_world(folder, spec, overwrite=True)
        log.info("world %s (%s) written in %.1f s", r.key, r.landscape, time.perf_counter() - t0)
    return worlds


def world_meta(world: Path) -> dict:
    """A world's `world.json`."""
    return json.loads((world / "world.json").read_text())


def held_out_area(worlds: dict[str, Path], keys: tuple[str, ...]) -> str:
    """WKT of the east halves of the regions `keys`: held out of training, scored."""
    import shapely

    halves = [parse_aoi(east_half(world_meta(worlds[k])["bbox_lonlat"])).geometry for k in keys]
    return shapely.union_all(halves).wkt


def build_cubes(out: Path, worlds: dict[str, Path]) -> dict[str, Path]:
    """A cube per region: the worlds behind one local STAC API (stac-fastapi-pgstac),
    searched and read by `build_cube` on a local Dask cluster. Re-runs extend, not redo."""
    from gapfill.cluster import local_cluster
    from gapfill.cube import CubeConfig, build_cube
    from gapfill.stac import local_stac_api

    cubes = {k: out / f"cube-{k}.zarr" for k in worlds}
    with (
        local_stac_api(list(worlds.values())) as api,
        local_cluster(2) as cluster,
    ):
        for key, world in worlds.items():
            meta = world_meta(world)
            t0 = time.perf_counter()
            cfg = CubeConfig(
                aoi=inset_lonlat_wkt(meta["bounds"], meta["epsg"]),
                start=meta["s2"][0]["datetime"][:10],
                end=meta["s2"][-1]["datetime"][:10],
                stac_url=api.url,
                chunk=256,
                bands="paper",  # the paper's experiment: its four bands
            )
            build_cube(cubes[key], cfg, dask_scheduler=cluster.scheduler_address)
            typer.echo(f"cube {key}: {cubes[key]} ({time.perf_counter() - t0:.1f} s)")
    return cubes
