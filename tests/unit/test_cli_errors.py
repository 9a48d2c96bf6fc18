"""How `gapfill` reports errors that reach its entry point, in-process."""

from __future__ import annotations

import errno
import sys

import pytest

import gapfill.cube
from gapfill import _interrupt, cli


@pytest.fixture
def run_main(monkeypatch, capsys):
    monkeypatch.setattr(_interrupt, "install", lambda: None)

    def run(error: BaseException) -> tuple[int, list[str]]:
        def fails(*args, **kwargs):
            raise error

        monkeypatch.setattr(gapfill.cube, "cube_info", fails)
        monkeypatch.setattr(sys, "argv", ["gapfill", "cube", "info", "c.zarr"])
        with pytest.raises(SystemExit) as stop:
            cli.main()
        return stop.value.code, capsys.readouterr().err.strip().splitlines()

    return run


@pytest.mark.parametrize(
    ("code", "strerror", "fix"),
    [
        (errno.ENOSPC, "No space left on device", "free space"),
        (errno.EROFS, "Read-only file system", "make it writable"),
        (errno.EACCES, "Permission denied", "make it writable"),
    ],
)
def test_a_refused_write_is_one_line_saying_how_to_resume(run_main, code, strerror, fix):
    exit_code, lines = run_main(OSError(code, strerror, "/data/c.zarr/s2/c/0/0/0/0"))
    assert exit_code == 3
    assert lines == [
        f"gapfill: error: {strerror} (/data/c.zarr/s2/c/0/0/0/0): {fix}, then run the same "
        "command again (what is complete is kept)"
    ]


def test_other_os_errors_are_bugs_and_keep_their_traceback(run_main):
    with pytest.raises(OSError, match="Bad file descriptor"):
        run_main(OSError(errno.EBADF, "Bad file descriptor"))


def test_an_unreadable_cube_is_not_called_a_non_zarr_store(monkeypatch):
    """Root reads everything, so the permission error is raised by hand here."""
    import xarray as xr

    from gapfill.cube import layout
    from gapfill.errors import InputError

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "c.zarr/zarr.json")

    monkeypatch.setattr(xr, "open_zarr", denied)
    with pytest.raises(InputError, match=r"c.zarr cannot be read \(Permission denied\)"):
        layout.open_cube("c.zarr")


def test_urls_in_messages_lose_their_credentials_and_signatures():
    from gapfill.storage import redact_text

    text = (
        "'/vsicurl/https://acc.blob.core.windows.net/c/B04.tif?st=2024&sig=ABC%2F' failed; "
        "s3://KEY:SECRET@bucket/runs (http://user:pw@host:8080/x?token=T)"
    )
    assert redact_text(text) == (
        "'/vsicurl/https://acc.blob.core.windows.net/c/B04.tif' failed; "
        "s3://bucket/runs (http://host:8080/x)"
    )
