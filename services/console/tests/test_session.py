"""The session cookie: encrypted, tamper-evident, aged out; the CSRF token rotates at login."""

from __future__ import annotations

import time

from crm_console.session import SessionCodec, anonymous_session

SECRET = "a-test-secret-of-at-least-32-characters"


def test_a_session_survives_the_cookie_and_hides_the_key() -> None:
    codec = SessionCodec(SECRET, max_age_seconds=3600)
    session = anonymous_session().with_key("crm_secret-key")

    cookie = codec.encode(session)

    assert "crm_secret-key" not in cookie
    assert codec.decode(cookie) == session


def test_a_tampered_cookie_or_another_secret_reads_as_no_session() -> None:
    codec = SessionCodec(SECRET, max_age_seconds=3600)
    cookie = codec.encode(anonymous_session().with_key("k"))

    assert codec.decode(cookie[:-4] + "AAAA") is None
    assert SessionCodec(SECRET + "x", max_age_seconds=3600).decode(cookie) is None
    assert codec.decode("not a cookie") is None
    assert codec.decode(None) is None


def test_a_cookie_older_than_the_maximum_age_reads_as_no_session() -> None:
    codec = SessionCodec(SECRET, max_age_seconds=60)
    cookie = codec.encode(anonymous_session().with_key("k"))
    now = int(time.time())

    assert codec.decode(cookie, now=now + 30) is not None
    assert codec.decode(cookie, now=now + 120) is None


def test_logging_in_rotates_the_csrf_token_which_is_checked_exactly() -> None:
    before = anonymous_session()
    after = before.with_key("k")

    assert after.csrf_token != before.csrf_token
    assert after.checks_csrf(after.csrf_token)
    assert not after.checks_csrf(before.csrf_token)
    assert not after.checks_csrf(None)
    assert not before.logged_in
    assert after.logged_in
