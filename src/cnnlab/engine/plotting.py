"""pyplot for figures written to files, without taking a notebook's inline plots away."""

from __future__ import annotations

import sys


def _interactive_session() -> bool:
    """Whether this runs inside IPython/Jupyter, whose inline backend must stay."""
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def pyplot():
    """matplotlib.pyplot, on the file-only Agg backend unless the process already uses
    pyplot or runs in a notebook: switching there would stop every later inline figure
    (cnnlab's figures are closed once written, so they are never shown twice)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules and not _interactive_session():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
