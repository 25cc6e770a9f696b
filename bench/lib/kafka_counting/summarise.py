"""Kafka requests per order per process between two moments, from sitecustomize's snapshots.

    python bench/lib/kafka_counting/summarise.py FOLDER START END ORDERS

START and END are Unix times (the phase's start and end); ORDERS the orders published in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _at(snapshots: list[dict[str, object]], moment: float) -> dict[str, object]:
    before = [s for s in snapshots if float(s["t"]) <= moment]  # type: ignore[arg-type]
    return before[-1] if before else {}


def _name(argv: str) -> str:
    for service in ("profile", "scoring", "lifecycle", "notification"):
        if f"{service}_service" in argv:
            return f"{service}-service"
    return "benchmark" if "pipeline.py" in argv else argv[:40]


def main() -> None:
    folder, start, end, orders = Path(sys.argv[1]), *map(float, sys.argv[2:5])
    totals: dict[str, dict[str, float]] = {}
    for path in sorted(folder.glob("*.jsonl")):
        snapshots = [json.loads(line) for line in path.read_text().splitlines() if line]
        if not snapshots:
            continue
        first, last = _at(snapshots, start), _at(snapshots, end)
        row = totals.setdefault(_name(str(snapshots[0]["argv"])), {})
        for key, value in last.items():
            if key not in ("t", "pid", "argv"):
                row[key] = row.get(key, 0) + (float(value) - float(first.get(key, 0))) / orders  # type: ignore[arg-type]
    keys = sorted({k for row in totals.values() for k in row})
    print("requests per order, " + f"{orders:,.0f} orders, {end - start:.1f} s")
    print("| process | " + " | ".join(k.replace("Request", "") for k in keys) + " | all |")
    print("|---|" + "---:|" * (len(keys) + 1))
    for name, row in sorted(totals.items()):
        cells = [f"{row.get(k, 0):.3f}" for k in keys]
        every = sum(row.values())
        if not every:
            continue  # a process that sent nothing in the window (a migration, say)
        print(f"| {name} | " + " | ".join(cells) + f" | {every:.3f} |")


if __name__ == "__main__":
    main()
