"""A cProfile run as text: the cumulative seconds of named parts, then the top functions by own
time. Shared by the benchmarks that profile in-process (lifecycle sweeps, notification delivery).
"""

from __future__ import annotations

import cProfile
import io
import pstats
from collections.abc import Sequence
from typing import Any

Part = tuple[str, str, str]  # label, part of the file name, function name


def profile_lines(
    profile: cProfile.Profile, parts: Sequence[Part], *, file_suffix: bool = False
) -> list[str]:
    """One line per part (its largest cumulative seconds), then the top 25 by own time.

    A part's file matches when its name ends with the part (``file_suffix``) or contains it.
    """
    entries: dict[tuple[str, int, str], Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    lines: list[str] = []
    for label, file_part, function in parts:
        cumulative = max(
            (
                value[3]
                for (filename, _, name), value in entries.items()
                if name == function
                and (filename.endswith(file_part) if file_suffix else file_part in filename)
            ),
            default=0.0,
        )
        lines.append(f"  {cumulative:8.2f}  {label}")
    buffer = io.StringIO()
    pstats.Stats(profile, stream=buffer).sort_stats("tottime").print_stats(25)
    lines.append("top 25 by own time:")
    lines += [
        "  " + line
        for line in buffer.getvalue().splitlines()
        if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced"))
    ]
    return lines


def own_seconds(profile: cProfile.Profile) -> float:
    """The seconds cProfile attributed to functions' own time, all functions together."""
    return float(pstats.Stats(profile).total_tt)  # type: ignore[attr-defined]
