"""Checkers for the from-scratch operators: d2l's ``corr2d`` and ``pool2d``.

Each runs shapes first, then values against ``cnnlab.basics.ops`` (float64 inputs, float32
rounding allowed: d2l builds its output with ``torch.zeros``), and on a wrong value names the
common mistake it matches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnlab.basics import ops
from cnnlab.exercises.limits import DEFAULT_TIME_LIMIT, checking
from cnnlab.exercises.result import (
    CheckResult,
    Failure,
    Report,
    as_tensor,
    call,
    close,
    max_difference,
    require_function,
    shape_text,
)

# (X shape, window shape): non-square inputs and windows, 1x1 and a window the size of X
CORR2D_CASES = (((5, 6), (2, 3)), ((6, 5), (3, 2)), ((4, 4), (1, 1)), ((3, 3), (3, 3)),
                ((7, 4), (2, 2)), ((6, 6), (3, 3)))
POOL2D_CASES = (((5, 6), (2, 3)), ((6, 5), (3, 2)), ((4, 4), (1, 1)), ((3, 3), (3, 3)),
                ((7, 4), (2, 2)), ((6, 6), (3, 3)))


def _inputs(cases, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(x, generator=generator, dtype=torch.float64),
             torch.randn(k, generator=generator, dtype=torch.float64)) for x, k in cases]


def _size_hint(x_shape, window, got) -> str:
    """Names the usual cause of an output of the wrong size, or ''."""
    (h, w), (kh, kw) = x_shape, window
    expected = (h - kh + 1, w - kw + 1)
    if got == expected[::-1]:
        return "; the axes are transposed (rows and columns swapped)"
    for padding in (1, 2):
        if got == (h + 2 * padding - kh + 1, w + 2 * padding - kw + 1):
            return f"; looks like padding {padding} was added: d2l's version uses no padding"
    if got == (h + kh - 1, w + kw - 1):
        return "; that is the 'full' size: the window must stay inside X (no padding)"
    if got == (h, w):
        return "; that is X's size: the output shrinks by the window size - 1"
    if got == (h - kh, w - kw):
        return "; one row and column short: loop over range(h - kh + 1), range(w - kw + 1)"
    if got == ((h - kh) // kh + 1, (w - kw) // kw + 1) and (kh, kw) != (1, 1):
        return "; the window moves by its own size: use stride 1"
    return ""


def _check_shapes(fn: Callable, inputs, call_text: Callable, extra: tuple = ()) -> str:
    for x, k in inputs:
        window = tuple(k.shape) if isinstance(k, torch.Tensor) else tuple(k)
        what = call_text(x, window, *extra)
        got = tuple(as_tensor(call(fn, x.clone(), k.clone() if isinstance(k, torch.Tensor)
                                   else k, *extra, what=what), what).shape)
        expected = (x.shape[0] - window[0] + 1, x.shape[1] - window[1] + 1)
        if got != expected:
            raise Failure(f"output of the wrong size for {what}: expected "
                          f"{shape_text(expected)}, got {shape_text(got)}"
                          + _size_hint(tuple(x.shape), window, got))
    sizes = ", ".join(f"{shape_text(x)}*{shape_text(_shape(k))}" for x, k in inputs)
    mode = f", mode={extra[0]!r}" if extra else ""
    return f"output shapes{mode} ({sizes})"


def _shape(k) -> tuple:
    return tuple(k.shape) if isinstance(k, torch.Tensor) else tuple(k)


def _first_difference(got: torch.Tensor, expected: torch.Tensor) -> str:
    diff = (got.double() - expected.double()).abs().nan_to_num(nan=float("inf"))
    index = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
    where = ", ".join(map(str, index))
    return f"Y[{where}] = {float(got[index]):.4g}, expected {float(expected[index]):.4g}"


# --------------------------------------------------------------------------------- corr2d


def _corr2d_text(x: torch.Tensor, window: tuple, *extra) -> str:
    return f"corr2d(X {shape_text(x)}, K {shape_text(window)})"


def _corr2d_mistakes(x: torch.Tensor, k: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(diagnosis, what that mistake outputs), for the mistakes distinguishable here."""
    mistakes = []
    for dims, text in (((0, 1), "the kernel is flipped: this computes a true convolution, "
                                "not the cross-correlation (use K as it is)"),
                       ((0,), "the kernel is flipped upside down (rows reversed)"),
                       ((1,), "the kernel is flipped left-right (columns reversed)")):
        if not torch.equal(k.flip(dims), k):
            mistakes.append((text, ops.corr2d(x, k.flip(dims))))
    if k.shape[0] == k.shape[1] and not torch.equal(k, k.T):
        mistakes.append(("the kernel's axes are transposed (K.T used)", ops.corr2d(x, k.T)))
    expected = ops.corr2d(x, k)
    if expected.shape[0] == expected.shape[1]:
        mistakes.append(("the output's axes are transposed (Y.T returned)", expected.T))
    if k.numel() > 1:
        mistakes.append(("the window mean instead of the sum of X * K",
                         expected / k.numel()))
    return mistakes


def _check_values(fn: Callable, inputs, reference: Callable, mistakes: Callable,
                  call_text: Callable, extra: tuple = ()) -> str:
    for x, k in inputs:
        what = call_text(x, _shape(k), *extra)
        got = as_tensor(call(fn, x.clone(), k.clone() if isinstance(k, torch.Tensor) else k,
                             *extra, what=what), what)
        expected = reference(x, k, *extra)
        if close(got, expected):
            continue
        found = [text for text, output in mistakes(x, k, *extra) if close(got, output)]
        diagnosis = (found[0] if found else "no common mistake matches; first difference "
                     + _first_difference(got, expected))
        raise Failure(f"wrong values for {what} (max |difference| "
                      f"{max_difference(got, expected):.3g}): {diagnosis}")
    return f"values against cnnlab.basics.ops on {len(inputs)} random float64 inputs"


def _check_inputs_unchanged(fn: Callable, inputs, call_text: Callable, extra: tuple = ()
                            ) -> str:
    for x, k in inputs:
        x_in = x.clone()
        k_in = k.clone() if isinstance(k, torch.Tensor) else k
        call(fn, x_in, k_in, *extra, what=call_text(x, _shape(k), *extra))
        if not torch.equal(x_in, x) or (isinstance(k, torch.Tensor) and not torch.equal(k_in, k)):
            raise Failure(f"{call_text(x, _shape(k), *extra)} changed its input in place")
    return "inputs left unchanged"


def check_corr2d(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 time_limit: float | None = DEFAULT_TIME_LIMIT) -> CheckResult:
    """Check a student's ``corr2d(X, K)``: (h, w), (kh, kw) -> (h - kh + 1, w - kw + 1)
    cross-correlation, as d2l defines it. Each call of ``fn`` gets ``time_limit`` seconds
    (None: no limit)."""
    require_function(fn, "check_corr2d", "corr2d(X, K)")
    with checking("check_corr2d", time_limit):
        report = Report("check_corr2d")
        inputs = _inputs(CORR2D_CASES, seed=0)
        report.run(lambda: _check_shapes(fn, inputs, _corr2d_text),
                   lambda: _check_values(fn, inputs, ops.corr2d, _corr2d_mistakes,
                                         _corr2d_text),
                   lambda: _check_inputs_unchanged(fn, inputs[:1], _corr2d_text))
        return report.result()


# --------------------------------------------------------------------------------- pool2d


def _pool2d_text(x: torch.Tensor, window: tuple, mode: str | None = None) -> str:
    mode_text = "" if mode is None else f", mode={mode!r}"
    return f"pool2d(X {shape_text(x)}, pool_size={tuple(window)}{mode_text})"


def _window_reductions(x: torch.Tensor, window: tuple) -> dict[str, torch.Tensor]:
    patches = ops.windows(x[None, None], window, stride=1)[0, 0]
    return {"max": patches.amax((-2, -1)), "mean": patches.mean((-2, -1)),
            "sum": patches.sum((-2, -1)), "min": patches.amin((-2, -1))}


def _what_it_is(got: torch.Tensor, reductions: dict[str, torch.Tensor]) -> str | None:
    return next((name for name, value in reductions.items() if close(got, value)), None)


def _pool2d_diagnosis(max_is: str | None, avg_is: str | None) -> str:
    """Names the mode mistake from what each mode's output turned out to be."""
    if max_is == "mean" and avg_is == "max":
        return "max and avg swapped: mode='max' returns the window mean, mode='avg' the max"
    if max_is == avg_is and max_is in ("max", "mean"):
        return (f"mode ignored: both modes return the window {max_is}"
                + (" (avg computed as max)" if max_is == "max" else " (max computed as avg)"))
    if max_is == "mean":
        return "max computed as avg: mode='max' returns the window mean"
    if avg_is == "max":
        return "avg computed as max: mode='avg' returns the window maximum"
    if avg_is == "sum":
        return "sum instead of mean: mode='avg' returns the window sum; divide by ph * pw"
    if max_is == "sum":
        return "mode='max' returns the window sum"
    if max_is == "min" or avg_is == "min":
        return "the window minimum instead of the maximum"
    return ""


def _check_pool_values(fn: Callable, inputs) -> str:
    for mode in ("max", "avg"):
        for x, k in inputs:
            window = tuple(k.shape)
            what = _pool2d_text(x, window, mode)
            got = as_tensor(call(fn, x.clone(), window, mode, what=what), what)
            expected = ops.pool2d(x, window, mode, stride=1)
            if close(got, expected):
                continue
            other_mode = "avg" if mode == "max" else "max"
            other = as_tensor(call(fn, x.clone(), window, other_mode,
                                   what=_pool2d_text(x, window, other_mode)), what)
            outputs = {mode: got, other_mode: other}
            reductions = _window_reductions(x, window)
            diagnosis = _pool2d_diagnosis(_what_it_is(outputs["max"], reductions),
                                          _what_it_is(outputs["avg"], reductions))
            diagnosis = diagnosis or ("no common mistake matches; first difference "
                                      + _first_difference(got, expected))
            raise Failure(f"wrong values for {what} (max |difference| "
                          f"{max_difference(got, expected):.3g}): {diagnosis}")
    return (f"max and avg values against cnnlab.basics.ops on {len(inputs)} random float64 "
            "inputs")


def _check_default_mode(fn: Callable, inputs) -> str:
    x, k = inputs[0]
    window = tuple(k.shape)
    what = _pool2d_text(x, window)
    try:
        got = as_tensor(call(fn, x.clone(), window, what=what), what)
    except Failure as failure:
        raise Failure(f"{failure}; mode must default to 'max'") from None
    if not close(got, ops.pool2d(x, window, "max", stride=1)):
        raise Failure(f"{what} without mode must default to mode='max'")
    return "mode defaults to 'max'"


def check_pool2d(fn: Callable[..., torch.Tensor], time_limit: float | None = DEFAULT_TIME_LIMIT
                 ) -> CheckResult:
    """Check a student's ``pool2d(X, pool_size, mode="max")``: d2l's max/avg pooling of an
    (h, w) tensor, stride 1, no padding. Each call of ``fn`` gets ``time_limit`` seconds
    (None: no limit)."""
    require_function(fn, "check_pool2d", "pool2d(X, pool_size, mode='max')")
    with checking("check_pool2d", time_limit):
        report = Report("check_pool2d")
        inputs = _inputs(POOL2D_CASES, seed=1)
        # the windows go in as tuples (d2l unpacks them); _inputs' kernels carry the shapes
        windows = [(x, tuple(k.shape)) for x, k in inputs]
        report.run(lambda: _check_shapes(fn, windows, _pool2d_text, ("max",)),
                   lambda: _check_shapes(fn, windows, _pool2d_text, ("avg",)),
                   lambda: _check_pool_values(fn, inputs),
                   lambda: _check_default_mode(fn, inputs),
                   lambda: _check_inputs_unchanged(fn, windows[:1], _pool2d_text, ("avg",)))
        return report.result()
