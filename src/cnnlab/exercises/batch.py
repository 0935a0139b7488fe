"""Checking many students' files, as a TA does: each file runs in a child process of its own.

A file is student code from its first line: its top-level code may loop, exit, print without
end, allocate all the memory there is or write files. The child process runs it with a memory
cap (on Linux and macOS), in an empty scratch folder as its working folder, with
every call under the checkers' time limit, and the whole process under a wall-clock limit;
what happens in one file never stops the batch or reaches the TA's process. It is not a
sandbox: a file can still read and write what the TA's account can.

The verdict comes back over an inherited pipe, not a file: the child is told the pipe and a
random token on its stdin (neither is in its argv or environment), binds the checkers, the
result type and what it writes with before the student's file runs, and sends one message,
``TOKEN\nJSON``, after the checkers have finished. A child that sends none failed. This stops
a file from writing a verdict of its own or replacing a checker by name; the student's code
still runs in the same process as the checker, so a file written to cheat can still reach into
its memory (see docs/course.md).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.errors import ConfigError, DataError, shown_path
from cnnlab.exercises.limits import DEFAULT_TIME_LIMIT, time_limit_value

# exercise -> (checker name, the names a student's file may give its answer, in order)
EXERCISES: dict[str, tuple[str, tuple[str, ...]]] = {
    "corr2d": ("check_corr2d", ("corr2d",)),
    "pool2d": ("check_pool2d", ("pool2d",)),
    "residual": ("check_residual_block", ("Residual",)),
    "spp": ("check_spp", ("SPP", "SpatialPyramidPooling")),
    "hourglass": ("check_hourglass", ("Hourglass",)),
}
DEFAULT_MEMORY_LIMIT = 8.0  # GiB per file (see _cap_memory): the SPP drop-in needs about 1.2
STARTUP = 60.0  # s allowed on top of the calls' limits: interpreter, torch, the official model
TAIL = 2000  # characters of a crashed child's output shown
MESSAGE_LIMIT = 16 * 2**20  # bytes of result the TA's process reads from one child
CHILD = "import sys; from cnnlab.exercises.batch import child_main; child_main(sys.argv[1:])"


@dataclass
class FileResult:
    """One student file: each exercise's verdict, or why the file could not be checked."""

    path: Path
    results: list[dict] = field(default_factory=list)  # {"name", "passed", "message", "text"}
    error: str | None = None  # the file could not be loaded or its process died

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.results) and all(r["passed"]
                                                                 for r in self.results)

    def lines(self) -> list[str]:
        """One line per exercise checked (or one for the file's error)."""
        if self.error is not None:
            return [f"{self.path}: {self.error}"]
        return [f"{self.path}: {r['name']}: {'passed' if r['passed'] else 'FAILED'} - "
                f"{r['message']}" for r in self.results]


def _checked_files(files: Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if not files:
        raise ConfigError("needs at least one student file", parameter="files")
    paths = []
    for file in files:
        path = Path(file)
        shown = shown_path(file)
        if not path.exists():
            raise DataError(f"{shown}: no such file")
        if path.is_dir():
            raise DataError(f"{shown}: a folder; give the students' .py files (e.g. "
                            f"{Path(file) / '*.py'})")
        if path.suffix == ".ipynb":
            raise DataError(f"{shown}: a notebook; convert it first (jupyter nbconvert --to "
                            "script) so that only its code runs, or check it inside the "
                            "notebook with cnnlab.exercises")
        if path.suffix != ".py":
            raise DataError(f"{shown}: not a Python file (.py)")
        paths.append(path.resolve())
    return paths


def check_files(files: Sequence[str | os.PathLike], exercise: str | None = None,
                time_limit: float | None = DEFAULT_TIME_LIMIT,
                memory_limit: float | None = DEFAULT_MEMORY_LIMIT,
                weights_root: str | os.PathLike | None = None,
                data_root: str | os.PathLike | None = None, drop_in: bool = True,
                progress: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """Check students' .py files, each in a child process of its own: every exercise whose
    answer the file defines (``EXERCISES``), or only ``exercise``. ``time_limit`` is per call
    into student code (its top-level code included), ``memory_limit`` the GiB of address space
    its process may use (None: no cap); ``progress`` gets each file's result as it comes."""
    paths = _checked_files(files)
    if exercise is not None and exercise not in EXERCISES:
        raise ConfigError(f"must be one of {', '.join(EXERCISES)}, got {exercise!r}",
                          parameter="exercise")
    seconds = time_limit_value(time_limit)
    if memory_limit is not None and (isinstance(memory_limit, bool)
                                     or not isinstance(memory_limit, (int, float))
                                     or not 0.5 <= memory_limit < float("inf")):
        raise ConfigError(f"must be at least 0.5 GiB, got "
                          f"{memory_limit!r}", parameter="memory_limit")
    roots = {"weights_root": weights_root, "data_root": data_root}
    for name, root in roots.items():
        if root is not None and not Path(root).is_dir():
            raise DataError(f"{shown_path(root)}: not a folder", parameter=name)
    request = {"exercise": exercise, "time_limit": seconds, "memory_limit": memory_limit,
               "drop_in": drop_in,
               **{k: None if v is None else str(Path(v).resolve()) for k, v in roots.items()}}
    results = []
    for path in paths:
        result = _check_in_child(path, request)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def wall_limit(time_limit: float | None) -> float | None:
    """The whole child process's limit: a few calls' worth, plus the start."""
    return None if time_limit is None else 4 * time_limit + STARTUP


def _check_in_child(path: Path, request: dict) -> FileResult:
    package_parent = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [package_parent, os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    token = secrets.token_hex(32)
    with tempfile.TemporaryDirectory(prefix="cnnlab-check-") as scratch:
        work = Path(scratch) / "work"
        work.mkdir()
        read_end, write_end = os.pipe()
        try:
            with open(Path(scratch) / "output.txt", "w+b") as output:
                process = subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(path), json.dumps(request)],
                    cwd=work, env=env, stdin=subprocess.PIPE, stdout=output,
                    stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_end,))
                # pass_fds keeps the number: the child is told it, and the token, on stdin
                secret = json.dumps({"token": token, "fd": write_end}).encode()
                os.close(write_end)
                write_end = -1
                with contextlib.suppress(OSError):  # a child dead at its start says so below
                    process.stdin.write(secret)
                with contextlib.suppress(OSError):
                    process.stdin.close()
                limit = wall_limit(request["time_limit"])
                try:
                    message, code = _collect(process, read_end, limit)
                finally:
                    _kill_group(process)  # processes the student's code started
                if code is None:
                    return FileResult(path, error=f"stopped after {limit:g} s in all (a call "
                                      "stuck where it cannot be interrupted, or many slow "
                                      "calls); look for a loop that never ends")
                if message:
                    return _received(path, message, token)
                output.seek(0, os.SEEK_END)
                size = output.tell()
                output.seek(max(0, size - TAIL))
                tail = output.read().decode("utf-8", "replace").strip().splitlines()
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
    how = (f"was killed by {signal.Signals(-code).name}" if code < 0
           and -code in signal.Signals._value2member_map_ else f"exited with code {code}")
    memory = (" (out of memory? --memory-limit caps it)" if code in (-signal.SIGKILL,)
              else "")
    last = f": {tail[-1][:300]}" if tail else ""
    return FileResult(path, error=f"its process {how} before any result{memory}{last}")


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _collect(process: subprocess.Popen, pipe: int,
             limit: float | None) -> tuple[bytes, int | None]:
    """What the child sent on the result pipe, read while it runs (a large result would fill
    the pipe), and its exit code; None when it ran past ``limit`` seconds."""
    deadline = None if limit is None else time.monotonic() + limit
    received = bytearray()
    reading = True
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return bytes(received), None
        if not reading:  # the pipe is closed: only the exit is awaited
            try:
                code = process.wait(timeout=left)
            except subprocess.TimeoutExpired:
                return bytes(received), None
            break
        # a short wait: a process the student's code started may hold the pipe open after
        # the child exits
        ready, _, _ = select.select([pipe], [], [], 0.2 if left is None else min(0.2, left))
        if ready:
            chunk = os.read(pipe, 65536)
            if not chunk:
                reading = False
                continue
            if len(received) <= MESSAGE_LIMIT:
                received += chunk
        if process.poll() is not None:
            code = process.returncode
            break
    # what was written just before the exit is still in the pipe
    os.set_blocking(pipe, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while reading and len(received) <= MESSAGE_LIMIT:
            chunk = os.read(pipe, 65536)
            if not chunk:
                break
            received += chunk
    return bytes(received), code


def _received(path: Path, message: bytes, token: str) -> FileResult:
    """The child's verdict, only as its checker sent it: ``TOKEN\nJSON``, one message."""
    forged = FileResult(path, error="its process sent a result that its checker did not write "
                        "(did the file write to the result pipe?)")
    head, newline, body = message.partition(b"\n")
    if not newline or not hmac.compare_digest(head, token.encode()):
        return forged
    try:
        sent = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return forged
    if not isinstance(sent, dict):
        return forged
    if set(sent) == {"error"} and isinstance(sent["error"], str):
        return FileResult(path, error=sent["error"])
    keys = {"name": str, "passed": bool, "message": str, "text": str}
    results = sent.get("results")
    if (set(sent) != {"results"} or not isinstance(results, list) or not results
            or not all(isinstance(r, dict) and set(r) == set(keys)
                       and all(type(r[k]) is kind for k, kind in keys.items())
                       for r in results)):
        return forged
    return FileResult(path, results=results)


# --------------------------------------------------------------------- the child process


def _cap_memory(gib: float | None) -> None:
    if gib is None:
        return
    try:
        import resource
    except ImportError:  # Windows: no cap
        return
    # Linux counts writable private memory in RLIMIT_DATA (not the address space reserved but
    # unused, which grows with the cores: malloc's arenas, thread stacks); elsewhere the
    # address space is what can be capped
    kind = resource.RLIMIT_DATA if sys.platform.startswith("linux") else resource.RLIMIT_AS
    limit = int(gib * 2**30)
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(kind, (limit, hard))


def _run_file(path: Path, time_limit: float | None) -> dict:
    """The student's file run as a module (not as __main__): its namespace."""
    import runpy

    from cnnlab.exercises.limits import checking, limited
    from cnnlab.exercises.result import Failure, exception_text

    sys.path.insert(0, str(path.parent))  # the student's own helper modules beside it
    with checking("loading", time_limit), limited(f"running {path.name}'s top-level code"):
        try:
            return runpy.run_path(str(path), run_name="__student__")
        except SyntaxError as exc:
            raise Failure(f"{path.name} line {exc.lineno}: SyntaxError: {exc.msg}") from None
        except Exception as exc:
            raise Failure(f"running {path.name} raised {exception_text(exc)}") from None
        except SystemExit as exc:
            raise Failure(f"{path.name} called exit({'' if exc.code is None else exc.code}) "
                          "at its top level") from None


def _child(path: Path, request: dict, send: Callable[[dict], None]) -> None:
    # Everything that judges is bound here, before the student's code runs: the checkers
    # (not looked up by name afterwards), the result type, the request's values, and the
    # builtins used below. The file can replace cnnlab.exercises.check_corr2d or EXERCISES;
    # this frame keeps the real ones.
    import cnnlab.exercises as checkers
    from cnnlab.exercises.result import CheckResult, Failure

    exercise_asked = request["exercise"]
    options_all = {"time_limit": request["time_limit"]}
    options_drop_in = {**options_all, "weights_root": request["weights_root"],
                       "data_root": request["data_root"], "drop_in": request["drop_in"]}
    wanted = [exercise_asked] if exercise_asked else list(EXERCISES)
    plan = [(exercise, EXERCISES[exercise][1], getattr(checkers, EXERCISES[exercise][0]),
             EXERCISES[exercise][0]) for exercise in wanted]
    every = ", ".join("/".join(names) for _, names in EXERCISES.values())
    is_type, text, truth, exception = type, str, bool, Exception

    try:
        namespace = _run_file(path, request["time_limit"])
    except Failure as failure:
        send({"error": text(failure)})
        return
    results = []
    for exercise, names, checker, checker_name in plan:
        found = next((namespace[n] for n in names if n in namespace), None)
        if found is None:
            if exercise_asked:
                send({"error": f"defines no {' or '.join(names)} (the {exercise} exercise)"})
                return
            continue
        options = dict(options_drop_in if exercise in ("spp", "hourglass") else options_all)
        try:
            result = checker(found, **options)
        except exception as exc:  # e.g. an instance given where the class was expected
            results.append({"name": checker_name, "passed": False, "message": text(exc),
                            "text": text(exc)})
            continue
        if is_type(result) is not CheckResult:
            results.append({"name": checker_name, "passed": False, "message":
                            f"{checker_name} did not return its own result (did the file "
                            "change the checker?)", "text": ""})
            continue
        results.append({"name": text(result.name), "passed": truth(result.passed),
                        "message": text(result.message), "text": text(result)})
    if not results:
        send({"error": f"defines none of the exercises' names ({every})"})
        return
    send({"results": results})


def child_main(argv: list[str]) -> None:
    """The child process: ``FILE REQUEST_JSON``; stdin holds the result pipe's number and the
    token that opens each message, read (and stdin closed) before the student's code runs."""
    secret = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    pipe = os.dup(secret["fd"])  # a number of its own, not inherited by the file's processes
    os.close(secret["fd"])
    token = secret["token"].encode()
    del secret
    request = json.loads(argv[1])
    dumps, write, close, flush = json.dumps, os.write, os.close, sys.stdout.flush
    done = []

    def send(result: dict) -> None:  # once, after the checkers have finished
        if done:
            return
        done.append(True)
        data = memoryview(token + b"\n" + dumps(result).encode("utf-8"))
        while data:
            data = data[write(pipe, data):]
        close(pipe)

    _cap_memory(request["memory_limit"])
    _child(Path(argv[0]), request, send)
    # the verdict is sent: the file's threads and exit handlers have nothing left to change
    with contextlib.suppress(Exception):
        flush()
        sys.stderr.flush()
    os._exit(0)
