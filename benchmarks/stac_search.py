"""Search through gapfill (pystac-client, profiles, paging) vs the bare HTTP floor.

Both ask the same local stac-fastapi-pgstac the same questions (the real sample's
S2 + S1 over its whole period, page size 50); the floor is plain httpx POSTs that
follow `next` links and parse JSON. The ratio is gapfill's search overhead. The two
alternate, `--repeat` times each; the JSON keeps every run and the medians.
Usage: python benchmarks/stac_search.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_result  # noqa: E402

AOI = "3.0195,50.8131,3.0283,50.8188"
START, END = "2017-08-01", "2018-11-30"


def _floor(url: str, page: int) -> int:
    import httpx

    n = 0
    with httpx.Client(timeout=30) as client:
        for coll in ("sentinel-2-l2a", "sentinel-1-rtc"):
            body: dict | None = {
                "collections": [coll],
                "bbox": [float(v) for v in AOI.split(",")],
                "datetime": f"{START}T00:00:00Z/{END}T23:59:59.999999Z",
                "limit": page,
            }
            target = f"{url}/search"
            while body is not None:
                data = client.post(target, json=body).json()
                n += len(data["features"])
                nxt = next((ln for ln in data.get("links", []) if ln["rel"] == "next"), None)
                if nxt is None:
                    break
                target, body = nxt["href"], nxt.get("body", body)
    return n


def _gapfill(url: str, page: int) -> int:
    from gapfill.grid import parse_aoi, parse_date_range
    from gapfill.stac import profiles_for, search

    s2p, s1p = profiles_for(stac_url=url)
    r = search(parse_aoi(AOI), parse_date_range(START, END), s2p, s1p, page_size=page)
    return len(r.s2) + len(r.s1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--page", type=int, default=50)
    a = ap.parse_args()
    from gapfill.demo import default_real_sample
    from gapfill.stac import local_stac_api

    t0 = time.perf_counter()
    with local_stac_api([default_real_sample()]) as api:
        startup = time.perf_counter() - t0
        times: dict[str, list[float]] = {"gapfill": [], "floor_httpx": []}
        counts = {}
        for _ in range(a.repeat):
            for name, fn in (("gapfill", _gapfill), ("floor_httpx", _floor)):
                t = time.perf_counter()
                counts[name] = fn(api.url, a.page)
                times[name].append(time.perf_counter() - t)
    assert counts["gapfill"] == counts["floor_httpx"], counts
    med = {k: statistics.median(v) for k, v in times.items()}
    path = write_result(
        "stac_search",
        {
            "params": vars(a),
            "server_startup_s": round(startup, 2),
            "items_per_search": counts["gapfill"],
            "median_s": {k: round(v, 4) for k, v in med.items()},
            "all_s": {k: [round(x, 4) for x in v] for k, v in times.items()},
            "time_ratio_gapfill_over_floor": round(med["gapfill"] / med["floor_httpx"], 2),
        },
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
