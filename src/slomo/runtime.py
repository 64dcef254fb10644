"""Process-wide settings a run's speed depends on, applied once when ``slomo`` is imported.

Both concern what the process does between two frames, not the frames: how torch's idle threads
wait, and whether the memory of a freed frame stays with the process.  A value the user set
(environment variable or glibc tunable) is always kept.
"""

from __future__ import annotations

import ctypes
import os

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: allocations above this are mapped afresh each time: glibc's largest threshold (64-bit), a little
#: more than a 1080p float RGB frame (24.9 MB)
MMAP_THRESHOLD = 32 << 20
#: free memory at the top of a heap above this goes back to the system
TRIM_THRESHOLD = 128 << 20
#: the environment variables by which a user tunes glibc's malloc (then slomo leaves it alone): the
#: thresholds themselves, or glibc's tunables when they name a ``malloc.`` one
THRESHOLD_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
MALLOC_VARIABLES = (*THRESHOLD_VARIABLES, TUNABLES_VARIABLE)


def wait_passively() -> None:
    """torch's CPU threads (GNU OpenMP) spin while they wait for work, by default.  In a run they
    share the cores with the decoder, the encoder's threads and the other threads of the pipeline,
    and a spinning thread keeps a working one off its core.  ``benchmarks/thread_wait.py`` (RIFE,
    2 threads, on 2 cores): beside one busy process 0.317 s a frame spinning against 0.244 waiting
    passively, and 3.1 s against 0.40 while a test suite also ran; alone 0.133 against 0.138.
    OpenMP reads this once, when torch is first imported, so it is set before that."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def keep_freed_frames() -> None:
    """Let glibc's malloc keep freed frames for the next ones instead of returning them at once.

    A frame's arrays are megabytes; glibc maps blocks that large afresh on each allocation, or
    gives the top of its heap back once 2x its (adaptive) threshold is free, so every new frame,
    and every numpy temporary of a model, faults its pages in again: at 640x272 ``colour.to_rgb``
    took 3.9 ms with 1499 page faults, 0.8 ms with 11 once they are kept; flow 1.2x and RIFE
    1.1-1.2x faster (``benchmarks/malloc_reuse.py``, docs/benchmarks.md).  Raising both thresholds keeps the
    pages in the process, where the next frame of the same size reuses them.  Only on glibc (musl
    and others manage memory differently), and not when the user tuned malloc."""
    try:
        if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name: not glibc
        return
    if any(name in os.environ for name in THRESHOLD_VARIABLES) \
            or "malloc." in os.environ.get(TUNABLES_VARIABLE, ""):
        return
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)


def configure() -> None:
    """Apply both; ``import slomo`` calls it."""
    wait_passively()
    keep_freed_frames()
