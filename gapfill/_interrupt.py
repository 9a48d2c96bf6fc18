"""Ctrl-C that always stops a run.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside a garbage
collector callback, a `__del__` or a weakref callback it is printed ("Exception ignored
in ...") and lost — measured: Dask's GC diagnostics swallowed a Ctrl-C during build-cube,
which then ran to the end. The CLI's handler therefore keeps re-raising it in the main
thread, once a second, until the run has begun to stop (`stopping()`).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = ["install", "quiet_teardown_logs", "stopping"]

# Loggers that report each cancelled gather, connection and callback of a stopping Dask
# cluster as an error with a traceback.
_TEARDOWN_LOGGERS = ("distributed", "asyncio", "tornado")

_stopping = threading.Event()
_watching = threading.Event()


def install() -> None:
    """Make SIGINT raise KeyboardInterrupt until the run acknowledges it (main thread)."""
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable


def _unraisable(info: Any) -> None:
    """A swallowed KeyboardInterrupt is raised again by `_repeat`: no traceback for it."""
    if not isinstance(info.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(info)


def stopping() -> None:
    """The KeyboardInterrupt has reached code that stops the run: no more repeats."""
    _stopping.set()


def quiet_teardown_logs() -> None:
    """Silence the teardown noise of a run that stops (Ctrl-C, a failed task): the one
    line the CLI prints says what happened."""
    for name in _TEARDOWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    # At once, not when the main thread reaches the cluster's teardown: Dask's event loop
    # thread cancels the interrupted call meanwhile and can log a traceback for it
    # (distributed.utils.sync's `cancel` before its future exists: a NameError).
    quiet_teardown_logs()
    if not _stopping.is_set() and not _watching.is_set():
        _watching.set()
        threading.Thread(target=_repeat, name="gapfill-sigint", daemon=True).start()
    raise KeyboardInterrupt


def _repeat() -> None:
    """A real signal to the main thread (not `_thread.interrupt_main`): it also wakes a
    main thread blocked in a sleep or a lock."""
    main = threading.main_thread().ident
    while not _stopping.wait(1.0) and main is not None:
        signal.pthread_kill(main, signal.SIGINT)
