"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class GapfillError(Exception):
    """An error the user can fix; its message says what is wrong and what to do."""

    exit_code: int = 2


class InputError(GapfillError):
    """A bad argument or file given by the user."""


class ServiceError(GapfillError):
    """A service (STAC API, database, cluster) that could not be reached or started."""

    exit_code = 3


def first_problem(exc: Exception) -> str:
    """`loc: msg` of a pydantic ValidationError's first error, on one line (for a config
    file: which key is wrong and why, without pydantic's links)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    err = errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "the file"
    return f"{where}: {err['msg']}"
