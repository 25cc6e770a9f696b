"""Worker threads allocate from glibc's main arena once the app factory has run."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from scoring_service.process_memory import share_main_arena

# In a fresh process (the arena a thread gets is decided at its first allocation): a worker
# thread allocates, then glibc's malloc_info lists the arenas ("heaps") in use.
_CHILD = """
import ctypes, sys, tempfile, threading
from scoring_service.process_memory import share_main_arena
if sys.argv[1] == "shared":
    assert share_main_arena()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
kept = []
worker = threading.Thread(target=lambda: kept.append(libc.malloc(64)))
worker.start()
worker.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as report:
    stream = libc.fopen(report.name.encode(), b"w")
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(report.name).read().count("<heap nr="))
libc.free(kept[0])
"""


def _is_glibc() -> bool:
    return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


def _arenas_after_a_thread_allocates(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not _is_glibc(), reason="glibc's allocator only")
def test_worker_threads_allocate_from_the_main_arena() -> None:
    assert _arenas_after_a_thread_allocates("default") > 1
    assert _arenas_after_a_thread_allocates("shared") == 1


@pytest.mark.skipif(_is_glibc(), reason="on glibc the arenas are shared")
def test_elsewhere_nothing_is_changed() -> None:
    assert share_main_arena() is False
