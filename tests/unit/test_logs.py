"""Log lines per the design conventions: Dask's start/stop chatter hidden unless DEBUG."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SCRIPT = """
import logging, sys
from gapfill.logs import setup_logging
setup_logging(sys.argv[1])
import distributed  # resets its own logger to INFO on import
logging.getLogger("distributed.scheduler").info("dask-info")
logging.getLogger("distributed.scheduler").warning("dask-warning")
logging.getLogger("gapfill.x").info("gapfill-info")
"""


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("INFO", {"dask-warning", "gapfill-info"}, {"dask-info"}),
        ("DEBUG", {"dask-info", "dask-warning", "gapfill-info"}, set()),
        ("WARNING", {"dask-warning"}, {"dask-info", "gapfill-info"}),
    ],
)
def test_dask_info_lines_only_at_debug(level, shown, hidden):
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, level], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for needle in shown:
        assert needle in proc.stderr, (level, needle, proc.stderr)
    for needle in hidden:
        assert needle not in proc.stderr, (level, needle, proc.stderr)
