"""Process-wide memory settings for PSMNet's large tensors: keep freed memory for reuse, or
run the process under tcmalloc."""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from cnnlab.errors import ConfigError

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep freed memory for reuse.

    By default glibc maps every block over 32 MB fresh from the kernel and unmaps it when freed,
    so each of PSMNet's ~100 MB 3-D activations is page-faulted in again on every use. Keeping
    the memory, measured bf16 at 384x1248 on 2 cores (before the in-place sums): 4.2 s -> 3.8 s
    per pair, peak RSS growth 0.84 -> 1.05 GB; memory freed stays with the process until it
    exits. It governs glibc's main heap: blocks allocated by other threads' arenas may still be
    mapped. Training gains more: it is most of the 2x of bf16 PSMNet's training step at
    256x512, batch 2 (bench/stereo_train_step.py, with the chunked soft-argmin), for a higher
    peak RSS (fragmentation: the training command reruns under tcmalloc where installed, see
    ``rerun_under_tcmalloc``, which needs no such setting). A permanent process setting, so
    loading a stereo model and starting stereo training call it (CLI or library) and a
    library import does not. Returns whether it applied: glibc on Linux only; elsewhere it
    does nothing.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def _status_kb(field: str) -> int | None:
    try:
        for line in open("/proc/self/status"):  # noqa: SIM115 - a tiny procfs read
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_growth_mb(run: Callable[[], object]) -> float | None:
    """MB by which ``run()`` raised this process's resident memory above where it stood
    before, at its peak: the kernel's high-water mark is reset first (Linux >= 4.0), so
    earlier peaks (imports, model building) do not hide it. None where /proc is not there."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset the peak resident set size
    except OSError:
        return None
    before = _status_kb("VmRSS")
    run()
    peak = _status_kb("VmHWM")
    return None if before is None or peak is None else (peak - before) / 1024


# where distributions (Debian/Ubuntu libtcmalloc-minimal4, Fedora gperftools-libs, conda's
# gperftools in the environment's lib) put tcmalloc
TCMALLOC_NAMES = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")
LIBRARY_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                "/usr/lib", "/usr/local/lib")
ALLOCATOR_VARIABLE = "CNNLAB_ALLOCATOR"
ALLOCATORS = ("auto", "system")
# an allocator the user preloads already is the user's choice
PRELOADED_ALLOCATORS = ("libtcmalloc", "libjemalloc", "libmimalloc")
_RERUN_MARK = "CNNLAB_ALLOCATOR_RERUN"  # set in the rerun process: never a second rerun


def find_tcmalloc(dirs: tuple[str, ...] | None = None) -> str | None:
    """Path of an installed tcmalloc library, or None: in ``dirs``, by default the system's
    library folders and the lib folders of this Python's (virtual, conda) environments."""
    prefixes = (sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX"))
    default = (*LIBRARY_DIRS, *(f"{prefix}/lib" for prefix in prefixes if prefix))
    for folder in dirs if dirs is not None else default:
        for name in TCMALLOC_NAMES:
            if (Path(folder) / name).is_file():
                return str(Path(folder) / name)
    return None


def tcmalloc_environment(environ: Mapping[str, str], library: str | None
                         ) -> dict[str, str] | None:
    """The environment to run this process again in, under tcmalloc (``library``), or None
    where it does not apply: no library, not glibc Linux, an allocator preloaded already, a
    rerun already, or ``CNNLAB_ALLOCATOR=system``. A bad ``CNNLAB_ALLOCATOR`` is refused.

    Why: glibc's malloc, even keeping freed memory, fragments PSMNet's training heap (at
    256x512, batch 2, bf16: 1.6 GB of live blocks in a 2.9 GB heap); tcmalloc does not, and
    is as fast (measured in docs/stereo.md)."""
    choice = environ.get(ALLOCATOR_VARIABLE, "auto")
    if choice not in ALLOCATORS:
        raise ConfigError(f"environment variable {ALLOCATOR_VARIABLE}={choice!r}: use one of "
                          f"{', '.join(ALLOCATORS)} (auto: tcmalloc where installed)")
    preload = environ.get("LD_PRELOAD", "")
    if (choice == "system" or library is None or environ.get(_RERUN_MARK)
            or any(Path(path).name.startswith(PRELOADED_ALLOCATORS)
                   for path in preload.replace(":", " ").split())
            or not sys.platform.startswith("linux")
            or platform.libc_ver()[0] != "glibc"):
        return None
    return {**environ, "LD_PRELOAD": f"{library} {preload}".strip(), _RERUN_MARK: "1",
            # tcmalloc reports every allocation over 1 GB on stderr unless told otherwise
            "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": environ.get(
                "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2 ** 40))}


def rerun_under_tcmalloc() -> None:
    """Replace this process by the same command under tcmalloc, where
    ``tcmalloc_environment`` says it applies; otherwise, or if the system refuses, return.

    For a command line's start only, before anything a rerun would repeat. The process keeps
    its id, arguments and open files; the preload passes on to its child processes (data
    workers gain from it too), and a debugger or profiler wrapping the command restarts."""
    environment = tcmalloc_environment(os.environ, find_tcmalloc())
    if environment is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(sys.executable, sys.orig_argv, environment)
        except OSError:  # could not start: carry on under the C library's malloc
            return
