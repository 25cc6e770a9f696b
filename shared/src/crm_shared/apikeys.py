"""``python -m crm_shared.apikeys new --name NAME --scopes read,write``: make an API key."""

from __future__ import annotations

import argparse
import json
import sys

from crm_shared._auth import generate_api_key
from crm_shared._settings import Scope


def main(argv: list[str] | None = None) -> int:
    """Print a new key once, and the JSON record to add to a service's ``*_API_KEYS``."""
    parser = argparse.ArgumentParser(prog="python -m crm_shared.apikeys")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="generate a key")
    new.add_argument("--name", required=True, help="who the key is for, e.g. crm-console")
    new.add_argument("--scopes", default="read", help="comma-separated: read, write, admin")
    args = parser.parse_args(argv)
    try:
        scopes = [Scope(scope.strip()) for scope in args.scopes.split(",") if scope.strip()]
    except ValueError:
        parser.error("scopes are read, write and admin")
    key, record = generate_api_key(args.name, scopes)
    print(f"API key (shown once, keep it secret): {key}")
    print("Record for *_API_KEYS (a JSON list of these):")
    json.dump(record.model_dump(mode="json"), sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
