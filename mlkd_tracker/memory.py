"""Keeping freed heap memory in the process, for loops that allocate the same large buffers again and again.

glibc's malloc serves every allocation above its mmap threshold (32 MiB at most) with a fresh
``mmap`` and unmaps it on ``free``; freed memory at the top of the heap goes back to the kernel
too. A whole-frame DarkLighter pass allocates such buffers by the gigabyte (one 64-channel
feature map of a 1280x720 frame is 236 MB), so on every frame the kernel faults in and zeroes
every page again: that was most of the system time of ``mlkd enhance``. With mmap off for
allocations (``M_MMAP_MAX`` 0), trimming only above 2 GiB of free heap top (``M_TRIM_THRESHOLD``,
the most ``mallopt`` takes) and then down to 2 GiB, not to nothing (``M_TOP_PAD``), large buffers
come from the heap and the next frame reuses the freed ones: the process keeps its peak working
set (one frame's buffers) instead of handing it back and faulting it in again. ``M_TOP_PAD`` also
makes each growth of the heap reserve 2 GiB more address space; pages are only backed by memory
once used.
"""
from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4  # mallopt parameters (malloc.h)
_KEPT = 2 ** 31 - 1  # bytes: mallopt takes an int
# malloc tuning the user may have chosen through the environment: then it is left as they set it
USER_MALLOC_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                        "GLIBC_TUNABLES")
_retained: bool | None = None


def retain_freed_memory() -> bool:
    """Make malloc keep freed memory for reuse, once per process; whether that is in effect.

    A no-op (False) with a C library other than glibc (macOS, Windows, musl) and when the user
    tunes malloc through any of :data:`USER_MALLOC_SETTINGS` (``MALLOC_MMAP_MAX_=65536`` restores
    glibc's default behaviour, e.g. to measure the difference).
    """
    global _retained
    if _retained is None:
        _retained = _configure_malloc()
    return _retained


def _configure_malloc() -> bool:
    if any(name in os.environ for name in USER_MALLOC_SETTINGS):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(param, value) for param, value in
               ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _KEPT), (_M_TOP_PAD, _KEPT)))
