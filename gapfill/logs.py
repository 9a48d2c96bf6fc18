"""Logging per the design conventions: rich on a terminal, plain lines otherwise."""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging", "progress_enabled"]


def progress_enabled() -> bool:
    """Progress bars only on an interactive terminal (never in CI or schedulers)."""
    return sys.stderr.isatty()


class _QuietDask(logging.Filter):
    """Dask logs cluster start and stop at INFO, and `import distributed` resets its
    logger to INFO whenever it happens: drop its records below WARNING unless DEBUG."""

    def __init__(self) -> None:
        super().__init__()
        self.quiet = True

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            self.quiet
            and record.levelno < logging.WARNING
            and record.name.startswith("distributed")
        )


_QUIET_DASK = _QuietDask()


class _Redacted(logging.Filter):
    """Log lines quote hrefs (GDAL errors, skipped items): signed URLs lose their query
    string and credentials before anything is printed."""

    def filter(self, record: logging.LogRecord) -> bool:
        from gapfill.storage import redact_text

        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_text(message), None
        return True


def setup_logging(level: str | int = "INFO") -> None:
    """Configure the root logger once; later calls only change the level."""
    if isinstance(level, str):
        name = level.upper()
        if name not in logging.getLevelNamesMapping():
            from gapfill.errors import InputError

            raise InputError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING or ERROR")
        level = logging.getLevelNamesMapping()[name]
    root = logging.getLogger()
    if not getattr(root, "_gapfill_configured", False):
        handler: logging.Handler
        if progress_enabled():
            from rich.logging import RichHandler

            handler = RichHandler(show_path=False, rich_tracebacks=False)
            handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
        else:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
        handler.addFilter(_QUIET_DASK)
        handler.addFilter(_Redacted())
        root.addHandler(handler)
        root._gapfill_configured = True  # type: ignore[attr-defined]
    root.setLevel(level)
    # urllib3 logs each retry at WARNING; the final error says it once.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # rasterio logs every GDAL error at INFO, even ones the caller handles.
    logging.getLogger("rasterio").setLevel(logging.WARNING)
    # Object stores: botocore says where it found its endpoint and credentials at INFO.
    for name in ("botocore", "aiobotocore", "s3fs"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("gapfill").setLevel(level)
    _QUIET_DASK.quiet = level > logging.DEBUG
