# ruff: noqa: E402  (the sys.path line must come first: it runs the old checkout)
"""Write a contract-1 (four-band) cube and product of the real sample A with the code of HEAD."""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, "/tmp/legacy")

import gapfill

print(gapfill.__file__)
import shapely
from pyproj import Transformer
from shapely.geometry import box


def real_aoi():
    square = box(501365, 5629365, 501675, 5629675).segmentize(20)
    t = Transformer.from_crs(32631, 4326, always_xy=True)
    return shapely.transform(square, t.transform, interleaved=False).wkt


from gapfill.cluster import local_cluster
from gapfill.cube import CubeConfig, build_cube
from gapfill.fill import fill
from gapfill.fill.config import FillConfig
from gapfill.stac import local_stac_api

if __name__ == "__main__":
    out = Path(sys.argv[1])
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    real = Path("/work/shared/data/real/worldcereal-31UDS-A")
    with local_stac_api([real]) as api, local_cluster(1) as cl:
        cfg = CubeConfig(
            aoi=real_aoi(), start="2018-04-01", end="2018-04-21", stac_url=api.url, chunk=32
        )
        print(build_cube(out / "cube-v1.zarr", cfg, dask_scheduler=cl.scheduler_address))
        print(
            fill(
                FillConfig(
                    cube=str(out / "cube-v1.zarr"),
                    out=str(out / "filled-v1.zarr"),
                    method="interpolate",
                    quicklooks=False,
                ),
                dask_scheduler=cl.scheduler_address,
            )
        )
