"""What the fault tests (``tests/test_faults.py``) share: the input they feed the stack and
the effects they read back.

Effects are read where they are stored, the services' own PostgreSQL databases (a count over
50,000 purchases is one query, not 50,000 HTTP calls), and the SMTP sink's ``.eml`` files.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from crm_contracts import Money, OrderPlaced, build_event, decode_event, encode_event
from crm_devstack.launcher import Stack
from crm_devstack.progress import wait_until

WELCOME_RULE = "welcome-first-order"
NOTIFICATION_ID_HEADER = "X-CRM-Notification-Id"
SOURCE = "/tests/faults"


def orders_for(customers: Sequence[str], count: int, *, now: datetime) -> list[OrderPlaced]:
    """`count` orders spread round-robin over `customers`, all placed within the last day
    (recent enough to be welcomed), each customer's in time order: every first order comes
    early in the stream, so messages are decided while the rest still flows."""
    rounds = -(-count // len(customers))
    step = timedelta(days=1) / (rounds + 1)
    orders = []
    for number in range(count):
        customer_id = customers[number % len(customers)]
        round_ = number // len(customers)
        orders.append(
            OrderPlaced(
                order_id=f"{customer_id}-o{round_:05d}",
                customer_id=customer_id,
                placed_at=now - timedelta(days=1) + step * (round_ + 1),
                total=Money(amount=Decimal(10 + number % 90), currency="USD"),
            )
        )
    return orders


def order_records(orders: Iterable[OrderPlaced]) -> list[tuple[bytes, bytes]]:
    """Each order as the (key, value) a shop publishes on ``crm.orders``."""
    records = []
    for order in orders:
        event = build_event(order, source=SOURCE, time=order.placed_at)
        records.append((event.subject.encode(), encode_event(event)))
    return records


def publish(stack: Stack, topic: str, records: Sequence[tuple[bytes, bytes]]) -> int:
    """Publish raw (key, value) records in order and wait until the broker has them all."""

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers, linger_ms=20)
        await producer.start()
        try:
            sent = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(send())
    return len(records)


def read_topic(stack: Stack, topic: str, expected: int, *, timeout: float = 30.0) -> list[Any]:
    """The first `expected` records of `topic` (all partitions), or fewer at `timeout`."""
    return _read_until(stack, topic, lambda found: len(found) >= expected, timeout)


def event_ids_on_topic(
    stack: Stack, topic: str, wanted: set[str], *, timeout: float = 30.0
) -> set[str]:
    """The CloudEvent ids on `topic`, read from the start until all `wanted` ones are seen
    (or `timeout`). A relay that re-sends after a failure may have put some there twice, so
    counting records would not tell when all have been read."""
    seen: set[str] = set()
    decoded = [0]  # how many of the records read so far are in `seen`

    def enough(found: list[Any]) -> bool:
        seen.update(decode_event(record.value).id for record in found[decoded[0] :])
        decoded[0] = len(found)
        return wanted <= seen

    _read_until(stack, topic, enough, timeout)
    return seen


def _read_until(
    stack: Stack, topic: str, enough: Callable[[list[Any]], bool], timeout: float
) -> list[Any]:
    async def read() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=stack.bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        found: list[Any] = []
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while not enough(found) and asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found.extend(records)
        finally:
            await consumer.stop()
        return found

    return asyncio.run(read())


def query(stack: Stack, service: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run `sql` on `service`'s PostgreSQL database and return the rows."""
    url = stack.services[service].database_url.replace("postgresql+asyncpg", "postgresql", 1)

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(url)
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def count(stack: Stack, service: str, sql: str, *args: Any) -> int:
    """The single number `sql` selects."""
    return int(query(stack, service, sql, *args)[0][0])


def wait_for_count(
    stack: Stack, service: str, sql: str, expected: int, *, timeout: float, what: str
) -> None:
    """Poll `sql` until it counts `expected`; a count above it fails at once."""
    seen = [0]

    def reached() -> bool | None:
        seen[0] = count(stack, service, sql)
        assert seen[0] <= expected, f"{what}: {seen[0]} > {expected}"
        return True if seen[0] == expected else None

    wait_until(reached, timeout=timeout, what=what, last_seen=lambda: str(seen[0]))


def intake_body(order: OrderPlaced) -> dict[str, Any]:
    """`order` as a shop without Kafka posts it to profile-service's ``/v1/orders``, its
    ``customer_id`` given as the shop's external id (profile-service assigns the CRM id)."""
    return {
        "type": "order.placed",
        "order_id": order.order_id,
        "customer": {"external_id": order.customer_id},
        "placed_at": order.placed_at.isoformat(),
        "total": order.total.model_dump(mode="json"),
    }


def take_orders(profile: httpx.Client, orders: Iterable[OrderPlaced]) -> list[dict[str, Any]]:
    """Post each order to profile-service's intake; each must be accepted (202) as new.
    Returns the acceptances (event id, CRM customer id, ...) in order."""
    accepted = []
    for order in orders:
        response = profile.post("/v1/orders", json=intake_body(order))
        assert response.status_code == 202, (order.order_id, response.status_code, response.text)
        accepted.append(response.json())
    return accepted


def readiness(stack: Stack, service: str) -> tuple[int, dict[str, Any]]:
    """`service`'s ``/readyz`` now: its status code and body (``checks`` by dependency)."""
    with httpx.Client(timeout=10, trust_env=False) as client:
        response = client.get(f"{stack.urls[service]}/readyz")
    return response.status_code, response.json()


def unsent_outbox_rows(stack: Stack, service: str, topic: str | None = None) -> int:
    """How many of `service`'s outbox rows (for `topic`, or for any) wait to be published."""
    sql = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
    if topic is None:
        return count(stack, service, sql)
    return count(stack, service, f"{sql} AND topic = $1", topic)


def purchase_counts(stack: Stack) -> dict[str, int]:
    """How many purchases scoring-service's ledger holds for each customer."""
    rows = query(
        stack,
        "scoring-service",
        "SELECT customer_id, count(*) FROM purchases GROUP BY customer_id",
    )
    return {row[0]: int(row[1]) for row in rows}


def order_counts(orders: Iterable[OrderPlaced]) -> dict[str, int]:
    """How many orders each customer placed: what every per-customer count must equal."""
    return dict(Counter(order.customer_id for order in orders))


def scored_order_counts(stack: Stack) -> dict[str, int]:
    """Each customer's ``order_count`` in scoring-service's latest scores."""
    rows = query(stack, "scoring-service", "SELECT customer_id, payload FROM scores")
    return {row[0]: int(_json(row[1])["order_count"]) for row in rows}


def lifecycle_order_counts(stack: Stack) -> dict[str, int]:
    """Each customer's ``order_count`` in lifecycle-service."""
    rows = query(
        stack, "lifecycle-service", "SELECT customer_id, order_count FROM customer_lifecycles"
    )
    return {row[0]: int(row[1]) for row in rows}


def wait_for_equal(actual: Any, expected: dict[str, int], *, timeout: float, what: str) -> None:
    """Poll `actual()` until it equals `expected`; say which customers differ otherwise."""
    last: list[dict[str, int]] = [{}]

    def equal() -> bool | None:
        last[0] = actual()
        return True if last[0] == expected else None

    def differences() -> str:
        wrong = {
            key: (last[0].get(key), value)
            for key, value in expected.items()
            if last[0].get(key) != value
        }
        extra = set(last[0]) - set(expected)
        sample = dict(list(wrong.items())[:5])
        return f"{len(wrong)} differ, e.g. {sample} (seen, expected); extra {sorted(extra)[:5]}"

    wait_until(equal, timeout=timeout, what=what, last_seen=differences)


def midday_zone(now: datetime) -> str:
    """An ``Etc/GMT`` zone where it is about noon at `now`, so quiet hours hold nothing back."""
    offset = max(-12, min(14, 12 - now.hour))
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def create_mailable_customers(
    stack: Stack,
    profile: httpx.Client,
    count_: int,
    *,
    now: datetime,
    timeout: float,
    with_phone: bool = False,
) -> list[str]:
    """`count_` customers with an email address (and a mobile number `with_phone`) in a
    midday time zone, known to notification-service (so their welcome is mailed) before this
    returns."""
    ids = []
    for number in range(count_):
        body = {
            "email": f"fault-{number:04d}@example.com",
            "first_name": f"Fault{number}",
            "time_zone": midday_zone(now),
        }
        if with_phone:
            body["phone"] = f"+4915112{number:06d}"
        created = profile.post("/v1/customers", json=body)
        assert created.status_code == 201, created.text
        ids.append(created.json()["id"])
    wait_for_count(
        stack,
        "notification-service",
        "SELECT count(*) FROM contacts WHERE known_from_profile AND email IS NOT NULL",
        count_,
        timeout=timeout,
        what="the customers in notification-service",
    )
    return ids


@dataclass(frozen=True)
class Outreach:
    """What notification-service decided and what reached the mail sink."""

    decided: list[asyncpg.Record]  # rule_id, customer_id, trigger_event_id, status, notification_id
    mail: Sequence[Message]

    def decided_twice(self) -> list[tuple[str, str, str]]:
        """(rule, customer, trigger) keys with more than one notification."""
        keys = Counter(
            (r["rule_id"], r["customer_id"], r["trigger_event_id"]) for r in self.decided
        )
        return [key for key, seen in keys.items() if seen > 1]

    def mailed_twice(self) -> list[str]:
        """Notification ids found on more than one mail."""
        ids = Counter(m[NOTIFICATION_ID_HEADER] for m in self.mail)
        return [key for key, seen in ids.items() if seen > 1]

    def welcome_mails_by_recipient(self) -> Counter[str]:
        """How many welcome mails each address received."""
        welcome_ids = {r["notification_id"] for r in self.decided if r["rule_id"] == WELCOME_RULE}
        return Counter(str(m["To"]) for m in self.mail if m[NOTIFICATION_ID_HEADER] in welcome_ids)

    def sent_email_ids(self) -> set[str]:
        """Notifications recorded as sent by email."""
        return {
            r["notification_id"]
            for r in self.decided
            if r["status"] == "sent" and r["channel"] == "email"
        }


def outreach(stack: Stack) -> Outreach:
    """notification-service's delivery log and the mail sink, read now."""
    decided = query(
        stack,
        "notification-service",
        "SELECT rule_id, customer_id, trigger_event_id, status, channel, notification_id"
        " FROM notifications",
    )
    sink = stack.mail_sink
    assert sink is not None
    parser = BytesParser(policy=policy.default)
    mail = [parser.parsebytes(path.read_bytes()) for path in sink.messages()]
    return Outreach(decided, mail)


def assert_no_second_message(found: Outreach, mailable: Sequence[str]) -> None:
    """At most one message per (rule, customer, trigger) and per welcome; every mail recorded
    as sent is in the sink exactly once."""
    assert not found.decided_twice(), found.decided_twice()[:5]
    assert not found.mailed_twice(), found.mailed_twice()[:5]
    twice = {to: n for to, n in found.welcome_mails_by_recipient().items() if n > 1}
    assert not twice, f"customers welcomed more than once: {twice}"
    welcomes = Counter(r["customer_id"] for r in found.decided if r["rule_id"] == WELCOME_RULE)
    assert all(welcomes[c] == 1 for c in mailable), {c: welcomes[c] for c in mailable}
    in_sink = {m[NOTIFICATION_ID_HEADER] for m in found.mail}
    assert found.sent_email_ids() <= in_sink, found.sent_email_ids() - in_sink


def _json(value: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return parsed
