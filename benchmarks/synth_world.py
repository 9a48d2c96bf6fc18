"""Synthetic world generation vs its floor, and peak memory at 1x and 4x area.

Floor: writing the same files with the same pixels (read back from the generated
world, block by block) through the same GeoTIFF -> COG path, so the ratio is the
price of computing the physics rather than of encoding the bytes. Generation and floor
alternate, `--repeat` times each, each in a fresh process (its own peak RSS); the 4x
area runs once, after them (its peak RSS against the 1x runs' median).
Usage: python benchmarks/synth_world.py [--size 1024] [--dates 6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import measure, write_result  # noqa: E402


def _generate(out: str, size: int, dates: int, block: int) -> dict:
    from gapfill.synth import WorldSpec, make_world

    make_world(out, WorldSpec(size=size, dates=dates, block=block))
    files = list(Path(out).rglob("*.tif"))
    return {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}


def _floor(world: str, out: str, block: int) -> dict:
    """Rewrite every COG of `world` with the same profile and pixels, block by block."""
    import rasterio
    import rasterio.shutil
    from rasterio.windows import Window

    n = 0
    for src_path in sorted(Path(world).rglob("*.tif")):
        dst = Path(out) / src_path.relative_to(world)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp.tif")
        with rasterio.open(src_path) as src:
            profile = {
                **src.profile,
                "driver": "GTiff",
                "tiled": True,
                "blockxsize": 256,
                "blockysize": 256,
                "compress": "deflate",
            }
            with rasterio.open(tmp, "w", **profile) as ds:
                for r in range(0, src.height, block):
                    for c in range(0, src.width, block):
                        w = Window(c, r, min(block, src.width - c), min(block, src.height - r))
                        ds.write(src.read(window=w), window=w)
        rasterio.shutil.copy(
            tmp,
            dst,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            BLOCKSIZE="512",
            OVERVIEWS="AUTO",
        )
        tmp.unlink()
        n += 1
    return {"files": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--dates", type=int, default=6)
    ap.add_argument("--block", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    runs = []
    tmp = Path(tempfile.mkdtemp(prefix="gapfill-bench-"))
    try:
        for r in range(a.repeat):
            one = measure(_generate, str(tmp / f"w1-{r}"), a.size, a.dates, a.block)
            floor = measure(_floor, str(tmp / f"w1-{r}"), str(tmp / f"floor-{r}"), a.block)
            runs.append({"generate_1x": one, "floor_same_files_1x": floor})
            shutil.rmtree(tmp / f"w1-{r}")
            shutil.rmtree(tmp / f"floor-{r}")
            print(f"run {r + 1}: generate {one['wall_s']:.2f} s, floor {floor['wall_s']:.2f} s")
        four = measure(_generate, str(tmp / "w4"), 2 * a.size, a.dates, a.block)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def median(key: str, field: str) -> float:
        return statistics.median(run[key][field] for run in runs)

    one_s, floor_s = median("generate_1x", "wall_s"), median("floor_same_files_1x", "wall_s")
    one_rss = median("generate_1x", "peak_rss_mb")
    mpix = a.size * a.size * a.dates / 1e6
    result = {
        "params": vars(a),
        "runs": runs,
        "generate_4x_area": four,
        "median_s": {"generate_1x": round(one_s, 2), "floor_same_files_1x": round(floor_s, 2)},
        "s2_mpix_per_s_1x": round(mpix / one_s, 3),
        "time_ratio_vs_floor": round(one_s / floor_s, 2),
        "peak_rss_ratio_4x_vs_1x": round(four["peak_rss_mb"] / one_rss, 3),
        "time_ratio_4x_vs_1x": round(four["wall_s"] / one_s, 2),
    }
    path = write_result("synth_world", result)
    print(path.read_text())


if __name__ == "__main__":
    main()
