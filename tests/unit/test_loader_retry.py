"""Remote COGs: a server that answers 503 now and then fails neither the cube build's
probe (which would skip the item: a day lost) nor the read."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pystac
import rasterio
from rasterio.transform import from_origin

from gapfill.cube.build import _probe
from gapfill.cube.loader import load
from gapfill.grid import Grid


class _Flaky(SimpleHTTPRequestHandler):
    """Serves files (with Range requests); each distinct request first gets a 503."""

    failed: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        key = f"{self.path} {self.headers.get('Range')}"
        if key not in self.failed:
            self.failed.append(key)
            self.send_error(503, "busy")
            return
        self._ranged()

    def do_HEAD(self) -> None:  # noqa: N802
        key = f"HEAD {self.path}"
        if key not in self.failed:
            self.failed.append(key)
            self.send_error(503, "busy")
            return
        super().do_HEAD()

    def _ranged(self) -> None:
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        rng = self.headers.get("Range")
        if rng:
            start, end = (int(v) if v else None for v in rng.split("=")[1].split("-"))
            end = len(data) - 1 if end is None else min(end, len(data) - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            body = data[start : end + 1]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_cog_read_survives_503_answers(tmp_path):
    values = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    profile = dict(driver="GTiff", width=64, height=64, count=1, dtype="uint16", crs="EPSG:32631")
    with rasterio.open(
        tmp_path / "b.tif", "w", transform=from_origin(500000, 5000640, 10, 10), **profile
    ) as dst:
        dst.write(values, 1)
    _Flaky.failed = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Flaky, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/b.tif"
        item = {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "x",
            "bbox": [3.0, 45.0, 3.1, 45.1],
            "geometry": None,
            "properties": {
                "datetime": "2022-01-01T00:00:00Z",
                "proj:epsg": 32631,
                "proj:bbox": [500000.0, 5000000.0, 500640.0, 5000640.0],
                "proj:shape": [64, 64],
                "proj:transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 5000640.0],
            },
            "assets": {"b": {"href": url, "type": "image/tiff; application=geotiff"}},
            "links": [],
        }
        assert _probe(pystac.Item.from_dict(item), ["b"], ["B02"]) is None
        grid = Grid(32631, 10.0, (500000.0, 5000000.0, 500640.0, 5000640.0))
        arr = load([item], ["b"], grid, 64).compute()
    finally:
        server.shutdown()
    assert _Flaky.failed, "the server never answered 503: the test tests nothing"
    np.testing.assert_array_equal(arr.values[0, 0], values.astype(np.float32))
