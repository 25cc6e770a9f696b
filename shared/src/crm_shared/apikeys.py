"""``python -m crm_shared.apikeys new --name NAME --scopes read,write``: make an API key."""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from crm_shared._auth import generate_api_key
from crm_shared._settings import ApiKeyRecord, Scope

_SCOPE_NAMES = ", ".join(scope.value for scope in Scope)
_ANY_SCOPE = " or ".join(_SCOPE_NAMES.rsplit(", ", 1))
_MAX_NAME: int = ApiKeyRecord.model_json_schema()["properties"]["name"]["maxLength"]


def main(argv: list[str] | None = None) -> int:
    """Print a new key once, and the JSON record to add to a service's ``*_API_KEYS``.

    Bad input is a usage error (exit status 2, the problem named), never a traceback.
    """
    parser = argparse.ArgumentParser(prog="python -m crm_shared.apikeys")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="generate a key")
    new.add_argument(
        "--name", required=True, type=_key_name, help="who the key is for, e.g. crm-console"
    )
    new.add_argument(
        "--scopes",
        default=[Scope.READ],
        type=_scopes,
        help=f"comma-separated, each once: {_SCOPE_NAMES} (default: read)",
    )
    args = parser.parse_args(argv)
    try:
        key, record = generate_api_key(args.name, args.scopes)
    except ValidationError as error:  # a rule of the record the checks above do not know yet
        new.error("; ".join(str(problem["msg"]) for problem in error.errors()))
    print(f"API key (shown once, keep it secret): {key}")
    print("Record for *_API_KEYS (a JSON list of these):")
    json.dump(record.model_dump(mode="json"), sys.stdout)
    print()
    return 0


def _key_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("give the key a name, e.g. crm-console")
    if len(name) > _MAX_NAME:
        raise argparse.ArgumentTypeError(f"at most {_MAX_NAME} characters, got {len(name)}")
    return name


def _scopes(text: str) -> list[Scope]:
    scopes: list[Scope] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue  # "read," is read
        try:
            scope = Scope(name)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown scope {name!r}: choose from {_SCOPE_NAMES}"
            ) from None
        if scope in scopes:
            raise argparse.ArgumentTypeError(f"scope {name!r} is given twice")
        scopes.append(scope)
    if not scopes:
        raise argparse.ArgumentTypeError(f"give at least one scope: {_ANY_SCOPE}")
    return scopes


if __name__ == "__main__":
    raise SystemExit(main())
