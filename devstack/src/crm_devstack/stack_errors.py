"""How the stack reports a part that could not start: the error, with the tail of its log."""

from __future__ import annotations

from pathlib import Path

_LOG_TAIL_LINES = 20


class StackError(RuntimeError):
    """The stack could not start; the message names the part that failed and shows its log."""


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file (empty if it does not exist yet)."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def tail_report(path: Path) -> str:
    """The last lines of a part's log, introduced by its path, for an error message."""
    tail = log_tail(path)
    if not tail:
        return f"(nothing in {path} yet)"
    return f"last lines of {path}:\n{tail}"
