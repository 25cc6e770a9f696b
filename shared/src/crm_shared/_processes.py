"""Child processes started in their own process group (embedded broker, local servers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_process_group(process: subprocess.Popen[bytes], *, timeout: float = 10.0) -> None:
    """SIGTERM the process's group, SIGKILL it if it is not gone within ``timeout`` seconds.

    The whole group, since a launcher script's children would outlive it otherwise.
    """
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)
