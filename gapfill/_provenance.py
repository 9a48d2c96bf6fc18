"""Software version and git SHA, recorded in every output."""

from __future__ import annotations

import functools
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("gapfill")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"


def _git(*args: str, timeout: float) -> str | None:
    """stdout of `git ARGS` run in this package's folder; None outside git."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


@functools.cache
def git_sha() -> str:
    """The commit of the checkout this package runs from, or "unknown" outside git."""
    out = _git("rev-parse", "HEAD", timeout=5)
    return (out or "").strip() or "unknown"


def git_dirty(ignore: tuple[str, ...] = ()) -> bool | None:
    """Whether the checkout differs from its commit (tracked or untracked files, except
    paths starting with `ignore`); None outside git."""
    out = _git("status", "--porcelain", "--untracked-files=normal", timeout=10)
    if out is None:
        return None
    changed = [ln[3:] for ln in out.splitlines() if ln.strip()]
    return any(not path.startswith(ignore) for path in changed)
