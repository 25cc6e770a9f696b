"""``python -m crm_shared.apikeys new``: a key and its record, or a clear usage error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from crm_shared import ApiKeyAuthenticator, ApiKeyRecord, Scope
from crm_shared.apikeys import main


def test_a_new_key_is_printed_once_with_the_record_that_admits_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["new", "--name", "crm-console", "--scopes", " read , write "]) == 0

    printed = capsys.readouterr().out.splitlines()
    key = printed[0].rsplit(" ", 1)[1]
    record = ApiKeyRecord.model_validate(json.loads(printed[2]))
    assert (record.name, record.scopes) == ("crm-console", [Scope.READ, Scope.WRITE])
    assert ApiKeyAuthenticator([record]).authenticate(key).name == "crm-console"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--name", "x", "--scopes", ""], "argument --scopes: give at least one scope"),
        (["--name", "x", "--scopes", " , "], "argument --scopes: give at least one scope"),
        (["--name", "x", "--scopes", "read,god"], "argument --scopes: unknown scope 'god'"),
        (["--name", "x", "--scopes", "read,write,read"], "scope 'read' is given twice"),
        (["--name", "", "--scopes", "read"], "argument --name: give the key a name"),
        (["--name", "   "], "argument --name: give the key a name"),
        (["--name", "n" * 101], "argument --name: at most 100 characters"),
        (["--scopes", "read"], "the following arguments are required: --name"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_problem(
    capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["new", *arguments])

    assert exit_.value.code == 2
    written = capsys.readouterr()
    assert written.out == ""
    assert "usage: python -m crm_shared.apikeys new" in written.err
    assert message in written.err


def test_the_command_line_prints_no_traceback_for_empty_scopes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "crm_shared.apikeys", "new", "--name", "x", "--scopes", ""],
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "give at least one scope: read, write or admin" in done.stderr
