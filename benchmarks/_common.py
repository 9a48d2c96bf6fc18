"""Shared helpers for benchmarks: run a function in a fresh process, time it, take peak RSS."""

from __future__ import annotations

import json
import multiprocessing as mp
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gapfill import __version__, git_sha
from gapfill._provenance import git_dirty

RESULTS = Path(__file__).parent / "results"


def _child(fn: Callable[..., Any], args: tuple, queue: mp.Queue) -> None:
    t0 = time.perf_counter()
    extra = fn(*args)
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    queue.put({"wall_s": wall, "peak_rss_mb": peak_mb, **(extra or {})})


def measure(fn: Callable[..., Any], *args: Any) -> dict:
    """Run fn(*args) in a fresh process (so peak RSS is its own); wall time and peak RSS."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# The tree measured is the one a benchmark started from: files edited while it runs (it
# may run for an hour) are not what it measured.
_TREE = {"git_sha": git_sha(), "dirty": git_dirty(ignore=("benchmarks/results/",))}


def write_result(name: str, payload: dict) -> Path:
    """Write benchmarks/results/NAME.json with machine and software details, and the
    command line (the script's own `command` where it gives one)."""
    import sys

    RESULTS.mkdir(parents=True, exist_ok=True)
    command = " ".join([f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])
    payload = {
        "command": command,
        "benchmark": name,
        "machine": {
            "cpus": mp.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "software": {"gapfill": __version__, **_TREE},
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path
