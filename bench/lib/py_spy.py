"""py-spy around a service process, and where its samples went (by category, by function)."""

from __future__ import annotations

import collections
import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path


@contextlib.contextmanager
def py_spy(
    pid: int, output: Path | None, options: Sequence[str] = ("--nonblocking",)
) -> Iterator[None]:
    """With an output path: sample `pid` with py-spy (collapsed stacks) while the block runs.

    ``options`` are py-spy's further ones: by default it samples without pausing the process.
    """
    if output is None:
        yield
        return
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [executable, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    recorder = subprocess.Popen(
        [*command, *options, "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def _frame_name(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:123)"; drop the line number.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarise_samples(
    path: Path,
    categories: Sequence[tuple[str, tuple[str, ...]]],
    top: int = 15,
    *,
    inclusive: bool = True,
) -> str:
    """Category shares (the first of `categories` with a frame in the stack) and the functions
    with the most own samples; with `inclusive`, short frame names and inclusive counts too."""
    stacks: list[tuple[list[str], int]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if stack and samples.isdigit():
                stacks.append((stack.split(";"), int(samples)))
    total = sum(samples for _, samples in stacks)
    if not total:
        return f"  (no samples in {path})"
    by_category: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        joined = ";".join(frames)
        category = next(
            (name for name, markers in categories if any(m in joined for m in markers)),
            "other (event loop incl. uvloop C code and socket I/O, HTTP)",
        )
        by_category[category] += count
        own[_frame_name(frames[-1]) if inclusive else frames[-1]] += count
        if inclusive:
            for name in {_frame_name(frame) for frame in frames}:
                within[name] += count
    lines = [f"  {total:,} samples (100 Hz, active threads only) in {path}", "  by category:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in by_category.most_common()]
    lines.append("  top self:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    if not inclusive:
        return "\n".join(lines)
    lines.append("  top inclusive (project and library frames):")
    interesting = [
        (name, n)
        for name, n in within.most_common()
        if not name.startswith(("<module>", "run (", "_run (", "run_forever", "_run_once"))
    ]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in interesting[: top * 2]]
    return "\n".join(lines)
