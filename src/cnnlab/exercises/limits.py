"""Time limits and output caps around every call into student code.

A student's forward pass may never return (a ``while`` whose condition never changes) or may
print on every step; a checker must still give its verdict. ``limited(what)`` runs one call
under the limit of the checker in progress (``checking(name, seconds)``, a context set once
per checker) and turns "did not return in time" into a ``TimedOut`` failure naming the call.

How the call is stopped, by where it runs:
- the main thread on Unix (a terminal, a script, a Jupyter cell): SIGALRM, which also
  interrupts a ``time.sleep`` or a blocked lock;
- any other thread (a thread pool, Windows): a watchdog thread raises the exception inside
  the checking thread (CPython's ``PyThreadState_SetAsyncExc``), which stops Python-level
  loops; a call blocked inside C code stops when that returns.
Both fire again every second until the call is left, so a loop that catches every exception
(``except: pass``) is stopped if it ever runs outside its ``try``. What cannot be stopped in
the same process (a loop whose whole body catches every exception, a call stuck in C, memory
exhausted) is what ``cnnlab exercises check`` guards against: each student file runs in a
child process, killed at a wall-clock limit.
"""

from __future__ import annotations

import contextvars
import ctypes
import math
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cnnlab.errors import ConfigError

DEFAULT_TIME_LIMIT = 60.0  # s per call into student code: their forward on a KITTI crop is ~1 s
PRINT_LIMIT = 4000  # characters of student output shown per checker; the rest is counted
REFIRE = 1.0  # s between further stops when student code swallowed the first


class StudentTimeout(BaseException):
    """Raised inside student code when its call is over the limit. A BaseException, so that
    the student's own ``except Exception`` does not swallow it."""


@dataclass
class _Limits:
    checker: str
    seconds: float | None
    output: _CappedOutput | None = None


_current: contextvars.ContextVar[_Limits | None] = contextvars.ContextVar("cnnlab_exercise",
                                                                          default=None)


def time_limit_value(seconds: float | None) -> float | None:
    """``seconds`` checked: None or 0 turns the limit off; otherwise a finite number > 0."""
    if seconds is None or (not isinstance(seconds, bool) and seconds == 0):
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"must be a number of seconds > 0 (None or 0: no limit), got "
                          f"{seconds!r}", parameter="time_limit")
    return float(seconds)


def seconds_text(seconds: float) -> str:
    return f"{seconds:g} s"


class _CappedOutput:
    """A stand-in for sys.stdout while student code runs: the first ``PRINT_LIMIT``
    characters pass through, the rest is counted (a print in a loop would flood a notebook or
    a TA's terminal)."""

    def __init__(self, stream, checker: str):
        self.stream, self.checker = stream, checker
        self.shown = 0
        self.hidden = 0

    def write(self, text: str) -> int:
        room = PRINT_LIMIT - self.shown
        if room > 0:
            part = text[:room]
            self.stream.write(part)
            self.shown += len(part)
        self.hidden += max(0, len(text) - max(room, 0))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str):  # encoding, fileno, ...: the real stream's
        return getattr(self.stream, name)

    def close_note(self) -> None:
        if self.hidden:
            self.stream.write(f"\n[{self.checker}: your code printed {self.hidden:,} more "
                              f"characters, not shown]\n")
            self.stream.flush()


@contextmanager
def checking(checker: str, time_limit: float | None) -> Iterator[None]:
    """The checker in progress and its limit per call into student code (seconds; None: no
    limit); student output beyond ``PRINT_LIMIT`` characters is counted, not shown."""
    limits = _Limits(checker, time_limit_value(time_limit))
    token = _current.set(limits)
    try:
        yield
    finally:
        _current.reset(token)
        if limits.output is not None:
            limits.output.close_note()


def current_checker() -> str:
    limits = _current.get()
    return limits.checker if limits is not None else "the checker"


@contextmanager
def limited(what: str) -> Iterator[None]:
    """Run the block (one call into student code) under the current checker's time limit; a
    block over it raises ``TimedOut`` (a Failure) naming ``what``, the limit and what to do."""
    from cnnlab.exercises.result import TimedOut  # result imports this module

    limits = _current.get()
    seconds = limits.seconds if limits is not None else None
    previous_stdout = sys.stdout
    if limits is not None:
        if limits.output is None or limits.output.stream is not previous_stdout:
            limits.output = _CappedOutput(previous_stdout, limits.checker)
        sys.stdout = limits.output
    alarm = _Alarm(seconds) if seconds is not None else None
    try:
        try:
            if alarm is not None:
                alarm.start()
            yield
        finally:
            if alarm is not None:
                alarm.stop()
    except StudentTimeout:
        alarm.stop()  # again: a stop may have come while the first one ran
        raise TimedOut(f"{what} did not return within {seconds_text(seconds)}: look for a loop "
                      "that never ends (or, if your code is only slow, pass a larger "
                      "`time_limit`)") from None
    finally:
        sys.stdout = previous_stdout


class _Alarm:
    """Raises StudentTimeout in this thread after ``seconds``, then every REFIRE seconds,
    until stopped."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.active = False
        self.thread_id = threading.get_ident()
        self.use_signal = (hasattr(signal, "setitimer")
                           and threading.current_thread() is threading.main_thread())
        self.previous_handler = None
        self.previous_timer = (0.0, 0.0)
        self.watchdog: threading.Thread | None = None
        self.stopped = threading.Event()
        self.finished = False

    def start(self) -> None:
        self.active = True
        if self.use_signal:
            try:
                self.previous_handler = signal.signal(signal.SIGALRM, self._on_signal)
            except ValueError:  # not the main interpreter's main thread after all
                self.use_signal = False
            else:
                self.previous_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, REFIRE)
                return
        self.watchdog = threading.Thread(target=self._watch, name="cnnlab-time-limit",
                                         daemon=True)
        self.watchdog.start()

    def _on_signal(self, signum, frame) -> None:
        if self.active:
            raise StudentTimeout()

    def _watch(self) -> None:
        wait = self.seconds
        while not self.stopped.wait(wait):
            with self.lock:
                if not self.active:
                    return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                           ctypes.py_object(StudentTimeout))
            wait = REFIRE

    def stop(self) -> None:
        self.active = False  # first: an alarm from now on does nothing
        with self.lock:
            if self.finished:
                return
            self.finished = True
            if self.use_signal:
                signal.setitimer(signal.ITIMER_REAL, *self.previous_timer)
                signal.signal(signal.SIGALRM, self.previous_handler or signal.SIG_DFL)
            else:
                self.stopped.set()
                # a stop sent just before this one and not yet raised is withdrawn
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                           None)
