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


@functools.cache
def git_sha() -> str:
    """The commit of the checkout this package runs from, or "unknown" outside git."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def git_dirty(ignore: tuple[str, ...] = ()) -> bool | None:
    """Whether the checkout differs from its commit (tracked or untracked files, except
    paths starting with `ignore`); None outside git."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=normal"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [ln[3:] for ln in out.stdout.splitlines() if ln.strip()]
    return any(not path.startswith(ignore) for path in changed)
