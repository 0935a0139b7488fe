"""Foundations, the public face of the cnn_basics lab: convolution and pooling written from
scratch (loops as d2l writes them, each tested against PyTorch), and the autograd lessons.

    from cnnlab import basics
    basics.corr2d(X, K)                 # equals F.conv2d(X[None, None], K[None, None])[0, 0]
    basics.pool2d(X, (2, 2), "avg")     # stride = the window, as in PyTorch
    basics.linear_regression_manual()   # trains, then shows its numbers and curves

Each lesson trains something small and returns a ``Lesson``: the numbers it measured
(``summary``, ``losses``) that shows itself in a notebook. Everything outside ``__all__``
may change without notice.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

from cnnlab.basics import lessons as _lessons
from cnnlab.basics.lessons import LessonResult
from cnnlab.basics.ops import (
    Conv2D,
    corr2d,
    corr2d_1x1,
    corr2d_multi_in,
    corr2d_multi_in_out,
    output_shape,
    pool2d,
)

__all__ = ["Conv2D", "Lesson", "corr2d", "corr2d_1x1", "corr2d_multi_in", "corr2d_multi_in_out",
           "edge_detection", "linear_regression_manual", "linear_regression_nn",
           "logistic_regression", "mlp_regression", "output_shape", "pool2d",
           "softmax_cross_entropy", "softmax_pooling", "transposed_convolution"]


class Lesson(LessonResult):
    """A lesson's measured result that shows itself: its numbers, then its figure (the loss
    curve, the fit over the data, the small matrices it computed)."""

    def save(self, path: str | Path) -> Path:
        """Write the figure as PNG; returns the path."""
        _lessons.plot_lesson(self, path)
        return Path(path)

    def png(self) -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            return self.save(Path(folder) / f"{self.name}.png").read_bytes()

    def __repr__(self) -> str:
        return "\n".join(self.lines())

    def _repr_png_(self) -> bytes:
        return self.png()

    def _ipython_display_(self) -> None:
        from IPython.display import Image, display

        print(repr(self))
        display(Image(self.png()))


def _shown(lesson: Callable[..., LessonResult]) -> Callable[..., Lesson]:
    """``lesson`` with its arguments and docstring, returning a ``Lesson``."""

    @functools.wraps(lesson)
    def run(*args, **kwargs) -> Lesson:
        result = lesson(*args, **kwargs)
        return Lesson(**{f.name: getattr(result, f.name) for f in dataclasses.fields(result)})

    run.__module__ = __name__
    return run


edge_detection = _shown(_lessons.edge_detection)
linear_regression_manual = _shown(_lessons.linear_regression_manual)
linear_regression_nn = _shown(_lessons.linear_regression_nn)
mlp_regression = _shown(_lessons.mlp_regression)
logistic_regression = _shown(_lessons.logistic_regression)
softmax_cross_entropy = _shown(_lessons.softmax_cross_entropy)
transposed_convolution = _shown(_lessons.transposed_convolution)
softmax_pooling = _shown(_lessons.softmax_pooling)
