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
