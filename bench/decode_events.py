"""CPU microseconds to decode one event: `decode_event` (pydantic) against the consumers' decoder.

Every consumer decodes every record it reads: an order costs scoring, lifecycle and
notification one decode each, its `score.updated` lifecycle, notification and profile one more.
`decode_event` is `CloudEvent.model_validate_json`, whose `data` validator parses the payload
to Python objects first and validates them again with the payload model, calling the
contracts' Python validators (amounts, currencies, times) on the way. The consumers' decoder
(`crm_shared._wire_decoding`, issue 12 "decode once") reads the bytes once with msgspec structs
derived from the contracts, checks amounts, currencies and times by rules stated from the
contracts' constants, and builds the same models without a second validation; whatever it is
not sure of, pydantic decodes. The earlier candidate, a pydantic `TypeAdapter` over a union
of envelopes tagged by `type` ("one pass"), is kept for comparison. `json.loads` is the floor:
parsing alone.

Timed with the thread's CPU clock (`time.thread_time`), not the wall clock, so a busy shared
machine does not inflate one side: `--rounds` alternations of `--number` calls each; the best
and the median round are printed.

`--baseline REF` adds the consumers' decoder as it was at REF (its `crm_shared._wire_*` and
`_decoding` modules read with `git show` and imported under another package name), so a change
to the decoder is measured against its predecessor in the same process and run. A last table
times `order.placed` records through the crm.orders consumers' decoder, which also applies the
edge policy (`check_order`, from the installed contracts, so alike in both).

Events: the pipeline's kinds (`order.placed` of one line as `bench/pipeline.py` sends it; the
contract tests' full `score.updated`, `lifecycle.stage_changed` and `notification.sent`), and
the mix a consumer group reads per order in the pipeline (order.placed and score.updated x3:
scoring, lifecycle, notification read the order; lifecycle, notification, profile its score).

    python bench/decode_events.py [--rounds 8] [--number 2000] [--baseline main]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, NotRequired, Union

from aiokafka import ConsumerRecord
from lib.baseline import REPOSITORY, short_commit
from lib.events import full_notification_sent, full_score_updated, full_stage_changed
from lib.report import format_table, machine_summary
from pydantic import Discriminator, Tag, TypeAdapter
from typing_extensions import TypedDict

from crm_contracts import (
    EVENT_TYPES,
    CloudEvent,
    EventPayload,
    Money,
    OrderLine,
    OrderPlaced,
    OrderPolicy,
    build_event,
    decode_event,
    encode_event,
)
from crm_shared._decoding import cloud_event_decoder
from crm_shared._wire_decoding import WireDecoder

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CUSTOMER = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
# The payloads' own times, as the contract tests' factories set them (the size is the same).
_CONTRACT_TESTS_NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def samples() -> dict[str, bytes]:
    """One encoded event of each kind the pipeline carries."""
    usd = Money(amount=Decimal("24.90"), currency="USD")
    order = OrderPlaced(
        order_id="bench-1",
        customer_id=CUSTOMER,
        placed_at=NOW,
        total=usd,
        items=[OrderLine(sku="SKU-00001", name="Product", quantity=1, unit_price=usd)],
        shop_id="shop-eu",
        channel="web",
    )
    payloads = {
        "order.placed": order,
        "score.updated": full_score_updated(CUSTOMER, _CONTRACT_TESTS_NOW),
        "lifecycle.stage_changed": full_stage_changed(CUSTOMER, _CONTRACT_TESTS_NOW),
        "notification.sent": full_notification_sent(CUSTOMER, _CONTRACT_TESTS_NOW),
    }
    return {
        kind: encode_event(build_event(payload, source="/bench", time=NOW))
        for kind, payload in payloads.items()
    }


def one_pass_decoder() -> Callable[[bytes], CloudEvent]:
    """The candidate: CloudEvent's fields as one TypedDict per type, a union tagged by `type`."""

    def envelope(event_type: str, payload: type[EventPayload]) -> Any:
        fields: dict[str, Any] = {}
        for name, info in CloudEvent.model_fields.items():
            if name == "type":
                fields[name] = Literal[event_type]
            elif name == "data":
                fields[name] = payload
            elif info.is_required():
                fields[name] = Annotated[info.annotation, info]
            else:  # absent stays absent (unset), as on the model
                fields[name] = NotRequired[info.annotation]
        return TypedDict(f"{payload.__name__}Envelope", fields)  # type: ignore[operator]

    union = Union[  # noqa: UP007 - built at run time
        tuple(Annotated[envelope(t, m), Tag(t)] for t, m in EVENT_TYPES.items())
    ]
    adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(
        Annotated[union, Discriminator("type")]  # type: ignore[arg-type]
    )

    def decode(raw: bytes) -> CloudEvent:
        return CloudEvent.model_construct(**adapter.validate_json(raw))

    return decode


_BASELINE_MODULES = ("_wire_rules", "_wire_structs", "_wire_decoding", "_decoding")
POLICY = OrderPolicy(currency="USD")


def baseline_modules(ref: str) -> tuple[str, ModuleType, ModuleType]:
    """`ref`'s commit, and its `_wire_decoding` and `_decoding` modules, imported from `ref`."""
    commit = short_commit(ref)
    package = f"wire_{commit}"
    folder = Path(tempfile.mkdtemp(prefix="decode-baseline-"))
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("")
    for module in _BASELINE_MODULES:
        source = subprocess.run(
            ["git", "-C", str(REPOSITORY), "show", f"{commit}:shared/src/crm_shared/{module}.py"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (folder / package / f"{module}.py").write_text(
            source.replace("crm_shared._wire_", f"{package}._wire_").replace(
                "crm_shared._decoding", f"{package}._decoding"
            )
        )
    sys.path.insert(0, str(folder))
    return (
        commit,
        importlib.import_module(f"{package}._wire_decoding"),
        importlib.import_module(f"{package}._decoding"),
    )


def order_record(raw: bytes) -> ConsumerRecord[bytes, bytes]:
    """`raw` as a crm.orders consumer receives it, stamped at the order's time."""
    stamp = int(NOW.timestamp() * 1000)
    return ConsumerRecord(
        "crm.orders", 0, 1, stamp, 0, CUSTOMER.encode(), raw, None, 36, len(raw), ()
    )


def edge_policy_table(
    raw: bytes, decoders: dict[str, Callable[[ConsumerRecord[bytes, bytes]], CloudEvent]], args: Any
) -> str:
    """CPU µs per `order.placed` record through each crm.orders consumers' decoder."""
    record = order_record(raw)
    timings: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(args.rounds):
        for name, decode in decoders.items():
            assert decode(record) == decode_event(raw)
            timings[name].append(cpu_microseconds(lambda d=decode: d(record), args.number))  # type: ignore[misc]
    rows: list[list[object]] = [
        [name, min(values), statistics.median(values)] for name, values in timings.items()
    ]
    return format_table(["decoder of crm.orders records", "µs best", "µs median"], rows)


def cpu_microseconds(function: Callable[[], object], number: int) -> float:
    started = time.thread_time()
    for _ in range(number):
        function()
    return (time.thread_time() - started) / number * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--number", type=int, default=2000)
    parser.add_argument("--baseline", help="also time the consumers' decoder as of this ref")
    args = parser.parse_args()
    print("# Decoding one event")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    one_pass = one_pass_decoder()
    wire = WireDecoder()
    decoders: dict[str, Callable[[bytes], object]] = {
        "decode_event": decode_event,
        "msgspec (consumers)": wire.decode,
    }
    if args.baseline:
        commit, baseline_wire, baseline_decoding = baseline_modules(args.baseline)
        baseline = baseline_wire.WireDecoder()
        decoders[f"msgspec at {commit}"] = baseline.decode
    decoders |= {
        "one pass": one_pass,
        "json.loads": json.loads,
    }
    # The gains shown: pydantic's against the consumers' decoder, and the baseline's against it.
    gains = [(name, "msgspec (consumers)") for name in decoders if name.startswith("msgspec at")]
    gains.insert(0, ("decode_event", "msgspec (consumers)"))
    rows = []
    events = samples()
    mix = {"order.placed": 3, "score.updated": 3}
    best_by_kind: dict[str, dict[str, float]] = {}
    for kind, raw in events.items():
        assert one_pass(raw) == decode_event(raw)
        assert wire.fast(raw) == decode_event(raw), "the consumers' decoder took the slow path"
        if args.baseline:
            assert baseline.fast(raw) == decode_event(raw), "the baseline took the slow path"
        timings: dict[str, list[float]] = {name: [] for name in decoders}
        for _ in range(args.rounds):  # alternate, so load changes hit every decoder alike
            for name, decode in decoders.items():
                timings[name].append(
                    cpu_microseconds(lambda r=raw, d=decode: d(r), args.number)  # type: ignore[misc]
                )
        row: list[object] = [kind, len(raw)]
        for values in timings.values():
            row += [min(values), statistics.median(values)]
        best_by_kind[kind] = {name: min(values) for name, values in timings.items()}
        medians = {name: statistics.median(values) for name, values in timings.items()}
        rows.append([*row, *(f"x{medians[a] / medians[b]:.2f}" for a, b in gains)])
    per_order = {
        name: sum(best_by_kind[kind][name] * count for kind, count in mix.items())
        for name in decoders
    }
    total: list[object] = ["per order (3 x order.placed + 3 x score.updated), best", "-"]
    total += [value for name in decoders for value in (per_order[name], "-")]
    total += [f"x{per_order[a] / per_order[b]:.2f}" for a, b in gains]
    rows.append(total)
    print()
    headers = ["event", "bytes"]
    for name in decoders:
        headers += [f"{name} µs best", f"{name} µs median"]
    headers += [f"{a} / {b} (medians)" for a, b in gains]
    print(format_table(headers, rows))
    # The crm.orders consumers also judge each order by the edge policy as they decode it.
    print()
    print("## order.placed through the crm.orders consumers' decoder (edge policy included)")
    record_decoders = {"msgspec (consumers)": cloud_event_decoder(POLICY, clock=lambda: NOW)}
    if args.baseline:
        record_decoders[f"msgspec at {commit}"] = baseline_decoding.cloud_event_decoder(
            POLICY, clock=lambda: NOW
        )
    print(edge_policy_table(events["order.placed"], record_decoders, args))
    print(f"load average at the end: {machine_summary()['load average']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
