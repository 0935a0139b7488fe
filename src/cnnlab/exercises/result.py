"""What a checker returns, and the small helpers every checker shares: calling student code
safely, reading its outputs, comparing tensors."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.exercises.limits import limited

ALL_PASSED = "all checks passed"


@dataclass
class CheckResult:
    """A checker's verdict: truthy when every check passed; ``message`` is the first failure.

    ``steps`` lists what was checked, in order, each "ok: ...", "FAILED: ..." or
    "skipped: ..."; ``figures`` holds the numbers measured (e.g. EPE values).
    """

    passed: bool
    name: str
    steps: list[str] = field(default_factory=list)
    message: str = ALL_PASSED
    figures: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"{self.name}: {'passed' if self.passed else 'FAILED'} - {self.message}"]
        lines += [f"  {step}" for step in self.steps]
        if self.figures:
            lines.append("  figures: " + ", ".join(f"{key}={_figure(value)}"
                                                   for key, value in self.figures.items()))
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        mark = "✅" if self.passed else "❌"
        lines = [f"**{mark} {self.name}**: {_escape(self.message)}", ""]
        for step in self.steps:
            status, _, text = step.partition(": ")
            icon = {"ok": "✔", "FAILED": "✘"}.get(status, "–")
            lines.append(f"- {icon} **{status}** {_escape(text)}")
        if self.figures:
            lines += ["", ", ".join(f"`{key}` = {_figure(value)}"
                                    for key, value in self.figures.items())]
        return "\n".join(lines)


def _figure(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _escape(text: str) -> str:
    return text.replace("*", r"\*").replace("_", r"\_")


class Failure(Exception):
    """A check failed; the message says precisely how (never escapes a checker)."""


class TimedOut(Failure):
    """A call into student code did not return within the time limit: the checks after it are
    skipped (each would wait as long again)."""


class Report:
    """Collects a checker's steps; ``result()`` makes the CheckResult."""

    def __init__(self, name: str):
        self.name = name
        self.steps: list[str] = []
        self.figures: dict[str, Any] = {}
        self.failure: str | None = None
        self.last_failure: Failure | None = None  # of the last step run
        self.stopped = False  # a call did not return in time: the rest is skipped

    def ok(self, what: str) -> None:
        self.steps.append(f"ok: {what}")

    def fail(self, what: str) -> None:
        self.steps.append(f"FAILED: {what}")
        if self.failure is None:
            self.failure = what

    def skip(self, what: str) -> None:
        self.steps.append(f"skipped: {what}")

    def step(self, run: Callable[[], str]) -> bool:
        """Run one step: its return value is the "ok" line, a Failure its "FAILED" line."""
        self.last_failure = None
        if self.stop_note():
            return False
        try:
            self.ok(run())
            return True
        except Failure as failure:
            self.last_failure = failure
            self.stopped = isinstance(failure, TimedOut)
            self.fail(str(failure))
            return False

    def stop_note(self) -> bool:
        """True, with one skipped line the first time, when a call did not return in time."""
        if self.stopped and not any(s.startswith("skipped: the remaining") for s in self.steps):
            self.skip("the remaining checks: a call above did not return in time")
        return self.stopped

    def run(self, *steps: Callable[[], str]) -> bool:
        """Run steps in order until one fails (later ones depend on it); True if all passed."""
        return all(self.step(run) for run in steps)  # all() stops at the first False

    def result(self) -> CheckResult:
        return CheckResult(self.failure is None, self.name, self.steps,
                           self.failure or ALL_PASSED, self.figures)


def exception_text(exc: BaseException) -> str:
    """``Type: first line of the message`` (shortened)."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` under the checker's time limit (``limits.limited``); an
    exception in student code becomes a Failure that names the call (``what``, e.g.
    "corr2d(X (5, 6), K (2, 3))"), as does a call that does not return in time."""
    with limited(what):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # student code may raise anything
            raise Failure(f"{what} raised {exception_text(exc)}{_memory_hint(exc)}") from exc
        except SystemExit as exc:  # exit() or sys.exit() in student code: not the checker's end
            raise Failure(f"{what} called exit({'' if exc.code is None else exc.code!r}): "
                          "a function or module must return its result, not end the "
                          "program") from None


def _memory_hint(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text \
            or "out of memory" in text.lower():
        return " (it asked for more memory than it may use: look for a size computed "\
               "wrongly, e.g. a tensor of shape (H*W, H*W))"
    return ""


def construct(cls: type, *args: Any, what: str, signature: str) -> Any:
    """``cls(*args)``; a TypeError (the arguments do not fit) adds the expected signature."""
    try:
        return call(cls, *args, what=what)
    except Failure as failure:
        if isinstance(failure.__cause__, TypeError):
            raise Failure(f"{failure}; the constructor must take {signature}") from None
        raise


def shape_text(shape: Sequence[int] | torch.Tensor) -> str:
    shape = tuple(shape.shape if isinstance(shape, torch.Tensor) else shape)
    return "(" + ", ".join(str(int(s)) for s in shape) + (",)" if len(shape) == 1 else ")")


def as_tensor(value: Any, what: str) -> torch.Tensor:
    """The student's output as a tensor; anything else is a Failure naming ``what``."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        return torch.as_tensor(value)
    except Exception:
        raise Failure(f"{what} returned a {type(value).__name__}, expected a tensor") from None


def as_tensors(value: Any, count: int, what: str, kind: str) -> list[torch.Tensor]:
    """A list or tuple of ``count`` tensors (``kind`` describes them in the message)."""
    if not isinstance(value, (list, tuple)):
        extra = f" of shape {shape_text(value)}" if isinstance(value, torch.Tensor) else ""
        raise Failure(f"{what} returned a {type(value).__name__}{extra}, expected a list of "
                      f"{count} tensors ({kind})")
    if len(value) != count:
        raise Failure(f"{what} returned {len(value)} tensors, expected {count} ({kind})")
    return [as_tensor(v, f"{what}[{i}]") for i, v in enumerate(value)]


def max_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """max |got - expected|; inf when the shapes or dtypes cannot be compared."""
    if tuple(got.shape) != tuple(expected.shape):
        return math.inf
    if not expected.numel():
        return 0.0
    try:
        return float((got.double() - expected.double()).abs().nan_to_num(nan=math.inf).max())
    except (RuntimeError, TypeError):  # e.g. a complex output
        return math.inf


def close(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4,
          atol: float = 1e-5) -> bool:
    """Same shape and values equal to float32 rounding."""
    if tuple(got.shape) != tuple(expected.shape):
        return False
    try:
        return torch.allclose(got.double(), expected.double(), rtol=rtol, atol=atol)
    except (RuntimeError, TypeError):
        return False


def require_function(fn: Any, checker: str, expected: str) -> None:
    """ConfigError unless ``fn`` is a plain callable (not a class)."""
    if isinstance(fn, type) or not callable(fn):
        got = f"the class {fn.__name__}" if isinstance(fn, type) else repr(fn)[:60]
        raise ConfigError(f"{checker}: expected a function like {expected}, got {got}")


def require_module_class(cls: Any, checker: str, expected: str) -> None:
    """ConfigError unless ``cls`` is an nn.Module subclass (the class, not an instance)."""
    if isinstance(cls, nn.Module):
        raise ConfigError(f"{checker}: expected the class (like {expected}), got an instance "
                          f"of {type(cls).__name__}; pass {type(cls).__name__} itself")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"{checker}: expected an nn.Module subclass like {expected}, got "
                          f"{repr(cls)[:60]}")
