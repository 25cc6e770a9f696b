"""The access log of the services as `make run` starts them holds no personal data or tokens.

The launcher runs each service under uvicorn with its plain-text access log on (production turns
it off). Query strings there carry e-mail addresses and phone numbers, and unsubscribe links
carry their signed token in the path: none of that may reach the log file.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from crm_devstack.launcher import start_stack
from crm_devstack.progress import wait_until
from crm_devstack.services import SERVICES

TOKEN = "eyJjIjoiMDE5MzhhIiwicCI6Im0ifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"
TARGETS = (
    f"/v1/customers?email=ada%40example.com&phone=%2B4915112345678&token={TOKEN}",
    f"/v1/unsubscribe/{TOKEN}?email=ada@example.com",
    "/v1/customers/grace%40example.com",
)


def test_the_access_log_of_make_run_masks_emails_phones_and_tokens(tmp_path: Path) -> None:
    profile = [spec for spec in SERVICES if spec.name == "profile-service"]
    with start_stack(data_dir=tmp_path, services=profile, free_ports=True) as stack:
        service = stack.services["profile-service"]
        key = {"X-API-Key": stack.api_key}
        with httpx.Client(base_url=service.base_url, headers=key, trust_env=False) as client:
            for target in TARGETS:
                assert client.get(target).status_code < 500

        log = wait_until(
            lambda: _access_lines(service.log_path, len(TARGETS)),
            timeout=30,
            what="the access log lines of the requests",
        )

    for secret in ("ada", "grace", "example.com", "4915112345678", TOKEN, "%40"):
        assert secret not in log, log
    assert "/v1/customers?email=…&phone=…&token=…" in log
    assert "/v1/unsubscribe/[token]?email=…" in log
    assert "/v1/customers/[email]" in log


def _access_lines(log_path: Path, expected: int) -> str | None:
    lines = [
        line for line in log_path.read_text(errors="replace").splitlines() if '"GET /v1/' in line
    ]
    return "\n".join(lines) if len(lines) >= expected else None
