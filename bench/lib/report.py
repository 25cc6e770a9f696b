"""How every benchmark reports: the machine summary, Markdown tables, percentiles and a digest
of the sources measured (others may change them during a run).
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from lib.backends import inherited_profile_settings

SHARED_CORES_NOTE = (
    "note: the load generator (this process), the server and the database share the same "
    "{cores} CPU cores; the figures include that contention."
)


def machine_summary() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load average": load,
    }


def print_header(title: str) -> None:
    print(f"# {title}")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    inherited = inherited_profile_settings()
    if inherited:
        print("inherited settings:", " ".join(inherited))
    print(SHARED_CORES_NOTE.format(cores=os.cpu_count()))
    print(flush=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text too), numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.rjust(width) if is_num else cell.ljust(width)
            for cell, width, is_num in zip(row, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    separator = "|" + "|".join(
        "-" * (w + 1) + ":" if is_num else "-" * (w + 2)
        for w, is_num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(cells[0]), separator + "|", *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return False
    return True


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def sources_digest(*packages: str) -> str:
    """A short sha256 of the named packages' Python sources (others edit them meanwhile)."""
    import hashlib
    import importlib

    digest = hashlib.sha256()
    for name in packages:
        root = Path(importlib.import_module(name).__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
