"""Process-wide allocator setting for inference on large tensors: keep freed memory for reuse."""

from __future__ import annotations

import ctypes
import platform
import sys

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
    mapped. A permanent process setting, so the CLI's inference commands call it (in-process
    callers of ``cli.main`` get it too) and a library import does not. Returns whether it
    applied: glibc on Linux only; elsewhere it does nothing.
    """
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
