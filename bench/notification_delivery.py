"""Notification-service: decisions per second, and emails delivered per second to a local server.

Per backend (the embedded PostgreSQL; `--sqlite`: also SQLite), on a fresh database migrated
with ``python -m notification_service.migrate``, in this process through the service's own code:
``create_app`` with Kafka off and the delivery loop off (``delivery_interval_seconds=0``), its
lifespan entered (engine, sessions, default playbook and templates seeded, channels built by
``delivery_config`` from the settings), then the handlers and workflows the consumer and the
delivery loop call. Every moment the service asks a clock for is the fixed clock
T = 2026-11-24 13:00 UTC (``deliver_due``'s ``clock``), except the rows' ``created_at``.

  1. **Trigger -> queued.** `--customers` (10,000) ``customer.created`` events through
     ``events.handlers.apply_events`` in batches of `--feed-batch` (500) events per transaction,
     as the consumer applies a batch (without its inbox rows and Kafka decoding). The customers
     have no email (so nothing in this part leaves through SMTP: the default rules fall back to
     the in-app inbox, which is this database); consent to in-app marketing is granted for 70%,
     withdrawn for 10%, never asked for 20%; time zones are spread so that about a third are in
     quiet hours (21:00-09:00 local) at T. 10% of them got a retention offer in-app 50 hours
     before T (fed and delivered untimed, at T - 50 h), so the frequency cap has history.
     Then `--events` (as many as customers) triggering events, the last 15% for customers who
     already have one: ``churn.warning`` open (retention offer 35%, account-manager task 5%),
     ``churn.warning`` updated (matches no rule, 5%), ``lifecycle.stage_changed`` to dormant
     (20%), churned (10%) or at risk (no rule, 5%), and a first ``order.placed`` (20%: four
     rules, the welcome due now, the others in 15 to 40 days). All happened in the 6 hours
     before T. Timed: events/s from trigger to queued rows (rule matching, the contact
     replica, the ``INSERT ... ON CONFLICT DO NOTHING`` on the de-dup key).
  2. **Redelivery.** The same trigger events again through ``apply_events`` (the consumer's
     inbox would drop them first; this is the handler's own de-dup path, as after a replay):
     no new row may appear.
  3. **Decisions.** ``workflows.delivery.deliver_due`` rounds at T (``delivery_batch_size``
     rows per round) until a round claims nothing: every due row is decided (rule, consent,
     channel, quiet hours, cap and arbitration, in-app delivery with rendering, outbox event).
     Prints decisions/s and the split of outcomes from the ``notifications`` table.
  4. **Email.** `--emails` (5,000) customers with an address, email marketing consent and a
     day-time time zone get one retention offer each (fed untimed), then delivery rounds at T
     until the queue is empty send them to a local SMTP server (aiosmtpd in its own process,
     ``lib.backends.SmtpSinkProcess``), through the service's ``SmtpChannel`` (one connection per
     message). The sink keeps each message's ``X-CRM-Notification-Id`` and ``Message-ID``; the
     run checks that exactly the due ones arrived (the offer's 10% hold-out is suppressed,
     not sent), with no duplicate and none missing.
     Unless `--no-pool`, the same again for as many other customers with a bench-only channel
     that keeps up to ``parallel_sends`` SMTP connections open (``PooledSmtpChannel`` below,
     the service's ``compose``): what a connection pool would gain. Each send is timed by a
     wrapper around the channel (compose + SMTP dialogue, event-loop waits included).

Prints the machine and load, per phase the rate, the CPU of this process, PostgreSQL and the
sink, the RSS, the wall time of every kind of statement (engine events, driver round trip
included), and the outcome split; `--profile` adds cProfile's top functions over the timed
phases (slower: a separate run). Nothing is asserted except the email counts, which are printed.

    python bench/notification_delivery.py [--customers 10000] [--events N] [--emails 5000]
        [--feed-batch 500] [--batch-size 200] [--parallel-sends 20] [--sqlite] [--no-postgres]
        [--no-pool] [--profile] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from lib.backends import SmtpSinkProcess, create_postgres_database, embedded_postgres
from lib.cprofile_report import profile_lines
from lib.delivery_base import (
    CLOCK,
)
from lib.delivery_email import EMAIL_HEADERS, EmailRun, email_phase
from lib.delivery_phases import (
    HEADERS,
    Context,
    Phase,
    decision_phases,
)
from lib.processes import (
    install_termination_handlers,
    migrate_service,
    run_async,
    sqlite_url,
)
from lib.report import format_table, machine_summary, sources_digest
from lib.sql_timing import StatementTimer, postgres_settings

from crm_shared import ServiceRuntime
from notification_service.app import create_app
from notification_service.settings import NotificationSettings
from notification_service.workflows.delivery import DeliveryConfig

DEFAULT_PARALLEL_SENDS = next(
    f.default for f in dataclasses.fields(DeliveryConfig) if f.name == "parallel_sends"
)
SOURCES = ("crm_shared", "notification_service")

# --------------------------------------------------------------------------------------------
# Events


# --------------------------------------------------------------------------------------------
# Channels: a timing wrapper, and a pooled SMTP sketch (bench only, not the service's code)


# --------------------------------------------------------------------------------------------
# Measuring a phase


# --------------------------------------------------------------------------------------------
# The phases


@contextlib.asynccontextmanager
async def notification_runtime(
    database_url: str, sink: SmtpSinkProcess, args: argparse.Namespace
) -> AsyncIterator[tuple[ServiceRuntime, DeliveryConfig]]:
    """notification-service's runtime and delivery config from its own factory and lifespan."""
    settings = NotificationSettings(
        database_url=database_url,
        environment="test",
        kafka_enabled=False,
        delivery_interval_seconds=0,
        delivery_batch_size=args.batch_size,
        smtp_host=sink.host,
        smtp_port=sink.port,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        config: DeliveryConfig = app.state.delivery
        yield app.state.runtime, dataclasses.replace(config, parallel_sends=args.parallel_sends)


async def run_phases(
    backend: str,
    database_url: str,
    db_pid: int | None,
    sink: SmtpSinkProcess,
    args: argparse.Namespace,
) -> tuple[list[Phase], list[EmailRun], list[str]]:
    profile = cProfile.Profile() if args.profile else None
    async with notification_runtime(database_url, sink, args) as (runtime, config):
        ctx = Context(backend, runtime, StatementTimer(runtime.engine), db_pid, sink, profile)
        phases, notes = await decision_phases(ctx, config, args)
        emails = [await email_phase(ctx, config, args, "mail", pooled=False)]
        if not args.no_pool:
            emails.append(await email_phase(ctx, config, args, "pool", pooled=True))
    phases += [run.phase for run in emails]
    notes += [phase.breakdown() for phase in phases]
    if profile is not None:
        notes.append(summarise_profile(profile))
    return phases, emails, notes


# Cumulative seconds of the service's parts under cProfile (database waits of their statements
# included: cProfile does not see SQLAlchemy's greenlet switch).
PARTS = (
    ("apply_events", "handlers.py", "apply_events"),
    ("  contacts.record_snapshot", "contacts.py", "record_snapshot"),
    ("  contacts.record_consent", "contacts.py", "record_consent"),
    ("  contacts.record_stage", "contacts.py", "record_stage"),
    ("  contacts.record_order_if_new", "contacts.py", "record_order_if_new"),
    ("  schedule_notifications", "scheduling.py", "schedule_notifications"),
    ("    playbook_store.all_rules", "playbook_store.py", "all_rules"),
    ("    PlaybookRule.from_dict", "playbooks.py", "from_dict"),
    ("    matching_rules", "playbooks.py", "matching_rules"),
    ("deliver_due", "delivery.py", "deliver_due"),
    ("  claim_due", "due_rows.py", "claim_due"),
    ("  _decide", "delivery.py", "_decide"),
    ("    delivery_inputs.customers", "delivery_inputs.py", "customers"),
    ("    decide_customer", "delivery_decision.py", "decide_customer"),
    ("      arbitrate", "delivery_policy.py", "arbitrate"),
    ("    _Rendering.prepare (render)", "delivery.py", "prepare"),
    ("      render", "templates.py", "render"),
    ("      unsubscribe_url", "message_context.py", "unsubscribe_url"),
    ("    add_many_to_outbox", "_outbox.py", "add_many_to_outbox"),
    ("  _record", "delivery.py", "_record"),
    ("  SmtpChannel.compose", "email.py", "compose"),
    ("  SmtpChannel.send", "email.py", "send"),
)


def summarise_profile(profile: cProfile.Profile) -> str:
    lines = ["cProfile over the timed phases, parts (cumulative s):"]
    return "\n".join(lines + profile_lines(profile, PARTS, file_suffix=True))


# --------------------------------------------------------------------------------------------


def run_backend(
    backend: str,
    database_url: str,
    db_pid: int | None,
    sink: SmtpSinkProcess,
    args: argparse.Namespace,
) -> tuple[list[Phase], list[EmailRun], list[str]]:
    migrate_service(
        "notification_service",
        "NOTIFICATION_",
        database_url,
        args.workdir / f"migrate-{backend}.log",
    )
    described = "sqlite"
    if backend == "postgres":
        described = run_async(lambda: postgres_settings(database_url))
    phases, emails, notes = run_async(lambda: run_phases(backend, database_url, db_pid, sink, args))
    return phases, emails, [f"{backend}: {described}", *notes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, help="trigger events (default: --customers)")
    parser.add_argument("--emails", type=int, default=5_000)
    parser.add_argument("--feed-batch", type=int, default=500, help="events per transaction")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=NotificationSettings.model_fields["delivery_batch_size"].default,
        help="rows per delivery round (the service's default)",
    )
    parser.add_argument(
        "--parallel-sends",
        type=int,
        default=DEFAULT_PARALLEL_SENDS,
        help="sends in flight per round (the service's default)",
    )
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-pool", action="store_true", help="skip the pooled-SMTP sketch")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed phases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    args.events = args.customers if args.events is None else args.events
    if args.customers < 1 or args.emails < 1:
        parser.error("--customers and --emails must be at least 1")
    install_termination_handlers()

    print("# notification-service: decisions per second and emails delivered per second")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    fingerprint = sources_digest(*SOURCES)
    print(f"sources (sha256 of crm_shared + notification_service *.py): {fingerprint}")
    print(
        f"clock T = {CLOCK:%Y-%m-%d %H:%M} UTC; feed batches of {args.feed_batch}; delivery "
        f"batch_size {args.batch_size}, parallel_sends {args.parallel_sends}",
        flush=True,
    )
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-notification-"))
    phases: list[Phase] = []
    emails: list[EmailRun] = []
    notes: list[str] = []
    loads = [f"start {os.getloadavg()[0]:.2f}"]
    try:
        with SmtpSinkProcess(args.workdir / "smtp-sink.log") as sink:
            if not args.no_postgres:
                with embedded_postgres() as server:
                    url = create_postgres_database(server, "bench_notification_delivery")
                    result = run_backend("postgres", url, server.pid(), sink, args)
                    loads.append(f"after postgres {os.getloadavg()[0]:.2f}")
                    phases += result[0]
                    emails += result[1]
                    notes += result[2]
            if args.sqlite:
                url = sqlite_url(args.workdir / "notification.db")
                result = run_backend("sqlite", url, None, sink, args)
                loads.append(f"after sqlite {os.getloadavg()[0]:.2f}")
                phases += result[0]
                emails += result[1]
                notes += result[2]
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in args.workdir.glob("*.log"):
                shutil.copy(log, args.keep / log.name)
        shutil.rmtree(args.workdir, ignore_errors=True)

    if sources_digest(*SOURCES) != fingerprint:
        print(f"WARNING: the sources changed during the run (now {sources_digest(*SOURCES)})")
    print()
    print(format_table(HEADERS, [phase.cells() for phase in phases]))
    print()
    print(format_table(EMAIL_HEADERS, [run.cells() for run in emails]))
    print()
    for note in notes:
        print(note)
    print()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average (1 min): {', '.join(loads)}; now {machine_summary()['load average']}")
    print(
        "per second = items / seconds; µs each = seconds / items; CPU: share of one core over "
        "the phase (this process runs the service's code; db = the PostgreSQL server's process "
        "tree; sink = the SMTP server process). in sends = share of the email phase's wall time "
        "during which sends were in flight (first start to last end, per round); send p50/p99 "
        "= one SmtpChannel.send (compose + the SMTP dialogue, event-loop waits included); "
        "SMTP sessions = EHLOs the sink saw. "
        f"Process peak RSS over the whole run (ru_maxrss): {peak:,.0f} MiB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
