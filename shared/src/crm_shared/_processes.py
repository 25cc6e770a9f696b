"""Child processes started in their own process group (embedded broker, local servers)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from types import TracebackType
from typing import Self


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


class StartedInWith:
    """A resource that ``with`` starts on entry and stops on exit, however the block ends."""

    def start(self) -> object:
        """Start the resource."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the resource; safe to call when it is not running."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
