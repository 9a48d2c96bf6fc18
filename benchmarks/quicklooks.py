"""Quicklooks of a filled product: what `gapfill fill` runs now (one Dask task per day on
the run's cluster, `gapfill.fill.run._quicklooks`) vs the same `quicklook` calls one day
after another in the driver (what fill did before), alternating, 3 runs each.

    .venv/bin/python benchmarks/quicklooks.py [--product demo-output/filled-real.zarr]

The default product is the demo's real-sample fill (64² × 118 days): `make demo` first.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402


def main() -> None:
    from gapfill.cluster import dask_client
    from gapfill.fill.quicklook import quicklook
    from gapfill.fill.run import FillReport, _quicklooks

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--product", default="demo-output/filled-real.zarr")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    given = Path(a.product).resolve()
    if not given.is_dir():
        sys.exit(f"quicklooks.py: {given} is not there: run `make demo` or give --product")
    ds = xr.open_zarr(given)
    days = [str(t)[:10] for t in ds["time"].values]
    runs = []
    with dask_client(None, a.workers) as client, tempfile.TemporaryDirectory() as tmp:
        # A copy: fill's quicklooks go beside the product, not into the user's folder.
        product = str(shutil.copytree(given, Path(tmp) / given.name))
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            for day in days:
                quicklook(product, day, Path(tmp) / f"{day}.png")
            serial = time.perf_counter() - t0
            report = FillReport(product, "bench")
            t0 = time.perf_counter()
            _quicklooks(client, product, days, report)
            runs.append(
                {
                    "serial_driver_s": round(serial, 2),
                    "cluster_s": round(time.perf_counter() - t0, 2),
                }
            )
            print(runs[-1])
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    path = write_result(
        "quicklooks",
        {
            "command": "benchmarks/quicklooks.py " + " ".join(sys.argv[1:]),
            "params": {
                "product": a.product,
                "days": len(days),
                "size": ds.sizes["y"],
                "workers": a.workers,
                "repeat": a.repeat,
            },
            "runs": runs,
            "median_s": med,
            "time_ratio_cluster_over_serial": round(med["cluster_s"] / med["serial_driver_s"], 3),
        },
    )
    print(f"median: serial {med['serial_driver_s']} s, cluster {med['cluster_s']} s; wrote {path}")


if __name__ == "__main__":
    main()
