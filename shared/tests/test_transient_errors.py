"""Which failures the consumer retries (never skipping events) and which it dead-letters."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm_shared import is_transient


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "retried"),
    [
        ("57P01", True),  # the database system is shutting down
        ("57P03", True),  # the database system is starting up
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("40P01", True),  # deadlock victim
        ("40001", True),  # serialization failure
        ("22P02", False),  # invalid text representation: the event itself is bad
        ("23505", False),  # unique violation
    ],
)
def test_postgres_errors_are_retried_by_their_sqlstate(sqlstate: str, retried: bool) -> None:
    error = DBAPIError("SELECT 1", {}, _DriverError(sqlstate))

    assert is_transient(error) is retried


def test_a_constraint_violation_is_not_transient() -> None:
    assert not is_transient(IntegrityError("INSERT", {}, _DriverError("23505")))


def test_the_network_going_away_is_transient() -> None:
    assert is_transient(ConnectionRefusedError())
    assert is_transient(TimeoutError())
