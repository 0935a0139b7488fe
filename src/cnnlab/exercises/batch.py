"""Checking many students' files, as a TA does: each file runs in a child process of its own.

A file is student code from its first line: its top-level code may loop, exit, print without
end, allocate all the memory there is or write files. The child process runs it with a memory
cap (on Linux and macOS), in an empty scratch folder as its working folder, with
every call under the checkers' time limit, and the whole process under a wall-clock limit;
what happens in one file never stops the batch or reaches the TA's process. It is not a
sandbox: a file can still read and write what the TA's account can.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
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
    with tempfile.TemporaryDirectory(prefix="cnnlab-check-") as scratch:
        answer = Path(scratch) / "result.json"
        work = Path(scratch) / "work"
        work.mkdir()
        with open(Path(scratch) / "output.txt", "w+b") as output:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(path), str(answer), json.dumps(request)],
                cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, start_new_session=True)
            limit = wall_limit(request["time_limit"])
            try:
                code = process.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return FileResult(path, error=f"stopped after {limit:g} s in all (a call "
                                  "stuck where it cannot be interrupted, or many slow calls); "
                                  "look for a loop that never ends")
            finally:
                _kill_group(process)  # processes the student's code started
            if answer.is_file():
                try:
                    return FileResult(path, **json.loads(answer.read_text()))
                except (ValueError, TypeError):
                    return FileResult(path, error="its process wrote an unreadable result "
                                      "(did the file write over it?)")
            output.seek(0, os.SEEK_END)
            size = output.tell()
            output.seek(max(0, size - TAIL))
            tail = output.read().decode("utf-8", "replace").strip().splitlines()
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


def _child(path: Path, answer: Path, request: dict) -> None:
    import cnnlab.exercises as checkers  # before the student's code can shadow anything
    from cnnlab.exercises.result import Failure

    def write(result: dict) -> None:
        answer.write_text(json.dumps(result))

    try:
        namespace = _run_file(path, request["time_limit"])
    except Failure as failure:
        write({"error": str(failure)})
        return
    wanted = [request["exercise"]] if request["exercise"] else list(EXERCISES)
    results = []
    for exercise in wanted:
        checker_name, names = EXERCISES[exercise]
        found = next((namespace[n] for n in names if n in namespace), None)
        if found is None:
            if request["exercise"]:
                write({"error": f"defines no {' or '.join(names)} (the {exercise} exercise)"})
                return
            continue
        checker = getattr(checkers, checker_name)
        options = {"time_limit": request["time_limit"]}
        if exercise in ("spp", "hourglass"):
            options.update(weights_root=request["weights_root"],
                           data_root=request["data_root"], drop_in=request["drop_in"])
        try:
            result = checker(found, **options)
        except Exception as exc:  # e.g. an instance given where the class was expected
            results.append({"name": checker_name, "passed": False, "message": str(exc),
                            "text": str(exc)})
            continue
        results.append({"name": result.name, "passed": result.passed,
                        "message": result.message, "text": str(result)})
    if not results:
        every = ", ".join("/".join(names) for _, names in EXERCISES.values())
        write({"error": f"defines none of the exercises' names ({every})"})
        return
    write({"results": results})


def child_main(argv: list[str]) -> None:
    """The child process: ``FILE RESULT_JSON REQUEST_JSON``."""
    request = json.loads(argv[2])
    _cap_memory(request["memory_limit"])
    _child(Path(argv[0]), Path(argv[1]), request)
