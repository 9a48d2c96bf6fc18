"""A Ctrl-C that lands where Python swallows exceptions still stops the run."""

from __future__ import annotations

import subprocess
import sys
import time

SCRIPT = """
import os, signal, time
from gapfill import _interrupt

_interrupt.install()

class Finaliser:
    def __del__(self):  # like Dask's GC callback: an exception raised here is swallowed
        os.kill(os.getpid(), signal.SIGINT)
        sum(range(1000))

Finaliser()
try:
    time.sleep(8)
    print("ran to the end")
except KeyboardInterrupt:
    _interrupt.stopping()
    print("stopped")
"""


def test_a_swallowed_ctrl_c_is_raised_again_without_a_traceback():
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert proc.stdout.strip() == "stopped", proc.stdout + proc.stderr
    assert time.monotonic() - t0 < 6
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
