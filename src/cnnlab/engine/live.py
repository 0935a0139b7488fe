"""Training curves that redraw themselves in a notebook after every epoch (as d2l's Animator
does), so a student sees the run learn without reading log lines."""

from __future__ import annotations

from cnnlab.engine.plotting import Picture, _interactive_session
from cnnlab.engine.rundir import curves_figure


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (Colab included), where pictures can be shown."""
    if not _interactive_session():
        return False
    import IPython

    shell = IPython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LiveCurves:
    """Called with each epoch's metrics row (``fit``'s ``on_epoch``): one picture of every
    epoch so far, updated in place."""

    def __init__(self, title: str = "", history: list[dict] | None = None):
        self.title = title
        self.rows: list[dict] = list(history or [])
        self._handle = None

    def __call__(self, row: dict) -> None:
        from IPython.display import display

        self.rows.append(row)
        picture = Picture(curves_figure(self.rows, self.title), self.title)
        if self._handle is None:
            self._handle = display(picture, display_id=True)
        else:
            self._handle.update(picture)
