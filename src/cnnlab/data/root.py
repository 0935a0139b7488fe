"""Where datasets live: --data-root, then $CNNLAB_DATA, then the user cache, then Debian's path."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CNNLAB_DATA"
DEBIAN_ROOT = Path("/usr/share/datasets")


def user_cache_dir() -> Path:
    """The per-user cache folder ($XDG_CACHE_HOME/cnnlab or ~/.cache/cnnlab)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnlab"


def candidate_roots(data_root: str | os.PathLike | None) -> list[Path]:
    """Roots to search, most specific first; an explicit root is the only one searched."""
    if data_root is not None:
        return [Path(data_root).expanduser()]
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(user_cache_dir())
    return roots


def download_root(data_root: str | os.PathLike | None) -> Path:
    """The root a download writes into: the first candidate."""
    return candidate_roots(data_root)[0]
