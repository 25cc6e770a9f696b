"""glibc's allocator for this process: worker threads allocate from the main heap.

The fit and the whole-base re-score run their numpy work in worker threads (the event loop
keeps answering meanwhile), and glibc gives each new thread an arena of its own: heaps of at
most 64 MiB that it unmaps or shrinks (`madvise(MADV_DONTNEED)`) as soon as their top is
free. Arrays of a million customers (8-19 MiB each, allocated and freed many times a fit)
then land on fresh pages again and again: the same `fit_models` at 300,000 customers took
22,400 page faults in a worker thread against 7,700 on the main thread; at 1,000,000 a
process's first fit took 22,700 faults and 0.42 s of system CPU, 233 and 0.16 s with the
arena shared (bench/RESULTS.md, branch fit5). With one arena,
threads allocate where the main thread does, whose freed memory stays mapped up to glibc's
(adaptive) trim threshold. Python objects are unaffected: CPython allocates them itself.
"""

from __future__ import annotations

import ctypes
import logging

_logger = logging.getLogger("crm.scoring.memory")

_M_ARENA_MAX = -8  # mallopt's parameter number in glibc's malloc.h


def share_main_arena() -> bool:
    """Have threads that first allocate after this call use glibc's main arena; False (and
    nothing changed) where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it: musl's mallopt is a no-op)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    shared = bool(mallopt(_M_ARENA_MAX, 1))
    if not shared:
        _logger.warning("glibc refused M_ARENA_MAX=1; worker threads keep arenas of their own")
    return shared
