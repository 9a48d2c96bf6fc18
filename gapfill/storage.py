"""Storage locations: local paths or object-store URLs, said the same way everywhere.

A location with a scheme (`s3://`, `gs://`, `abfs://`, `memory://`...) is a URL and is
passed on untouched; anything else is a local path, made absolute in the process that
reads the user's input so that workers elsewhere (Ray, Dask) see the same path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gapfill.errors import InputError

__all__ = [
    "is_url",
    "absolute",
    "shown",
    "redacted_options",
    "require_writable",
    "exclusive_run",
    "redact_text",
]


def is_url(location: str) -> bool:
    """True for `scheme://...` other than `file://`."""
    return "://" in location and not location.startswith("file://")


def absolute(location: str) -> str:
    """A URL as given; a local path (or `file://` URL) as an absolute path."""
    if is_url(location):
        return location
    return str(Path(location.removeprefix("file://")).expanduser().absolute())


def shown(location: str) -> str:
    """The location without credentials or query options, for messages and logs."""
    if not is_url(location):
        return location
    scheme, _, rest = location.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2].split('?')[0]}"


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]+")


def redact_text(text: str) -> str:
    """`text` with every URL in it `shown`: no user-info, no query string (SAS tokens,
    signed-URL signatures). For messages, logs and attrs that may quote an href."""
    return _URL.sub(lambda m: shown(m.group(0)), text)


# storage_options keys whose values are credentials (s3fs key/secret/token, adlfs
# account_key/sas_token/client_secret, gcsfs token, passwords, signed query parts).
_SECRET = re.compile(r"key|secret|token|password|credential|sas|sig", re.IGNORECASE)


def redacted_options(options: dict[str, Any] | None) -> dict[str, Any] | None:
    """`storage_options` with every credential value replaced by "***", nested dicts too:
    what a run may write into files (config.json, checkpoints, attrs) and logs."""
    if options is None:
        return None
    return {
        k: redacted_options(v)
        if isinstance(v, dict)
        else ("***" if _SECRET.search(str(k)) and v is not None else v)
        for k, v in options.items()
    }


def require_writable(
    location: str | Path, flag: str, storage_options: dict[str, Any] | None = None
) -> None:
    """Refuse, before any work, an output location that cannot be created: its nearest
    existing ancestor must be a folder this process may write into; at a URL, a probe
    object beside the store must be writable (bucket, endpoint, credentials)."""
    if is_url(str(location)):
        _probe_url(str(location), flag, storage_options)
        return
    path = Path(absolute(str(location)))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(
            f"{flag} {location}: {parent} is a file, not a folder: choose another {flag}"
        )
    if os.statvfs(parent).f_flag & os.ST_RDONLY:
        raise InputError(
            f"{flag} {location}: {parent} is on a read-only file system: choose another {flag}"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{flag} {location}: no permission to write in {parent}: choose another {flag}"
        )


@contextlib.contextmanager
def exclusive_run(
    location: str | Path, busy: str, storage_options: dict[str, Any] | None = None
) -> Iterator[None]:
    """Hold `.NAME.lock` beside a local store for the whole run; a second run on the same
    store is refused at once with `busy`. The file is removed on the way out, so nothing
    is left beside the store, and a lock is only trusted while its file is still the one
    at that path (a run that locked a file another run just removed tries again).
    On an object store, where no lock files exist, the run holds a lease instead
    (`gapfill.lease`: `NAME.lease`, created only if absent, renewed, expiring)."""
    if is_url(str(location)):
        from gapfill.lease import Lease, LeaseHeld

        lease = Lease(str(location), "gapfill", storage_options=storage_options)
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(lease.held())
            except LeaseHeld:
                raise InputError(busy) from None
            yield
        return
    path = Path(absolute(str(location)))
    lock = path.parent / f".{path.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(busy) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)


def _probe_url(location: str, flag: str, storage_options: dict[str, Any] | None) -> None:
    import uuid

    import fsspec

    from gapfill.errors import ServiceError

    probe = f"{location.rstrip('/')}.probe-{uuid.uuid4().hex[:8]}"
    try:
        fs, path = fsspec.core.url_to_fs(probe, **(storage_options or {}))
        fs.pipe_file(path, b"ok")
        fs.rm_file(path)
    except ImportError as exc:
        raise InputError(
            f"{flag} {shown(location)}: {exc} — install the fsspec filesystem for it "
            "(s3fs: gapfill[s3])"
        ) from None
    except Exception as exc:  # botocore's NoCredentialsError, ClientError, OSError...
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ServiceError(
            f"{flag} {shown(location)} cannot be written ({type(exc).__name__}: "
            f"{redact_text(reason)}): check the bucket, the endpoint and the credentials "
            "(AWS_* variables or storage_options)"
        ) from None
