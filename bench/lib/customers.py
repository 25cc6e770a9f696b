"""Generated customer rows for the import benchmarks: five countries' names, phones and zones,
about 2% invalid rows and 3% repeated emails, as CSV or NDJSON.
"""

from __future__ import annotations

import csv
import io
import json
import random
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lib.processes import Row

COLUMNS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "time_zone",
    "locale",
    "tags",
)


@dataclass(frozen=True)
class _Country:
    phone: Callable[[int], str]
    time_zones: tuple[str, ...]
    locale: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    domains: tuple[str, ...]


_UK_MOBILE = ("7400", "7500", "7412", "7800")


_COUNTRIES = (
    _Country(
        phone=lambda n: f"+49 151 {n % 100_000_000:08d}",
        time_zones=("Europe/Berlin",),
        locale="de-DE",
        first_names=("Anna", "Lukas", "Jürgen", "Sophie", "Maximilian", "Lea", "Jörg", "Emma"),
        last_names=("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Groß"),
        domains=("gmx.de", "web.de", "t-online.de", "gmail.com"),
    ),
    _Country(
        phone=lambda n: f"+1 415-{200 + (n // 10_000) % 800:03d}-{n % 10_000:04d}",
        time_zones=("America/New_York", "America/Chicago", "America/Los_Angeles"),
        locale="en-US",
        first_names=("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "Chloé"),
        last_names=("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "O'Neil"),
        domains=("gmail.com", "yahoo.com", "outlook.com", "icloud.com"),
    ),
    _Country(
        phone=lambda n: f"+44 {_UK_MOBILE[(n // 1_000_000) % 4]} {n % 1_000_000:06d}",
        time_zones=("Europe/London",),
        locale="en_GB",
        first_names=("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Zoë"),
        last_names=("Taylor", "Davies", "Evans", "Thomas", "Roberts", "Walker"),
        domains=("btinternet.com", "gmail.com", "hotmail.co.uk"),
    ),
    _Country(
        phone=lambda n: f"+33 6 {n % 100_000_000:08d}",
        time_zones=("Europe/Paris",),
        locale="fr-FR",
        first_names=("Léa", "Hugo", "Chloé", "Louis", "Inès", "Gabriel", "François"),
        last_names=("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent"),
        domains=("orange.fr", "free.fr", "laposte.net", "gmail.com"),
    ),
    _Country(
        phone=lambda n: f"+34 6{n % 100_000_000:08d}",
        time_zones=("Europe/Madrid",),
        locale="es-ES",
        first_names=("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Álvaro"),
        last_names=("García", "Fernández", "González", "Rodríguez", "López", "Núñez"),
        domains=("telefonica.net", "gmail.com", "hotmail.es"),
    ),
)


_TAGS = ("newsletter", "vip", "wholesale", "source:shopify", "source:pos", "b2b", "gift-buyer")


_INVALID_KINDS = (
    "email",
    "email",
    "phone",
    "time_zone",
    "locale",
    "tags",
    "missing_identity",
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass
class CustomerRows:
    """Deterministic, realistic customer rows for imports.

    ``invalid_share`` of the rows carry one defect (bad email, phone, time zone, locale or
    tag, or no identity at all); ``duplicate_share`` repeat an earlier valid row's email
    (sometimes in another case) with no external id or phone, so they match that customer.
    The counters say what was generated, to compare with the import's report.
    """

    count: int
    seed: int = 1
    invalid_share: float = 0.02
    duplicate_share: float = 0.03
    invalid: int = 0
    duplicates: int = 0
    unique_valid: int = 0

    def __iter__(self) -> Iterator[Row]:
        rng = random.Random(self.seed)
        self.invalid = self.duplicates = self.unique_valid = 0
        with_email: list[Row] = []
        for n in range(self.count):
            roll = rng.random()
            if roll < self.invalid_share:
                self.invalid += 1
                yield self._invalid(rng, n)
            elif roll < self.invalid_share + self.duplicate_share and with_email:
                self.duplicates += 1
                yield self._duplicate(rng, rng.choice(with_email))
            else:
                self.unique_valid += 1
                row = self._valid(rng, n)
                if row["email"]:
                    with_email.append(row)
                yield row

    def _valid(self, rng: random.Random, n: int) -> Row:
        country = rng.choice(_COUNTRIES)
        first = rng.choice(country.first_names)
        last = rng.choice(country.last_names)
        email = f"{_ascii(first)}.{_ascii(last)}{n}@{rng.choice(country.domains)}"
        if rng.random() < 0.1:
            email = email.title()  # normalised to lower case by the service
        has_email = rng.random() < 0.95
        has_phone = rng.random() < 0.7 or not has_email
        return {
            "external_id": f"shop:{100_000 + n}" if rng.random() < 0.9 or not has_email else "",
            "email": email if has_email else "",
            "phone": country.phone(n) if has_phone else "",
            "first_name": first,
            "last_name": last if rng.random() < 0.95 else "",
            "time_zone": rng.choice(country.time_zones) if rng.random() < 0.85 else "",
            "locale": country.locale if rng.random() < 0.85 else "",
            "tags": rng.sample(_TAGS, k=rng.choice((0, 0, 1, 1, 2, 3))),
        }

    def _invalid(self, rng: random.Random, n: int) -> Row:
        row = self._valid(rng, n)
        kind = rng.choice(_INVALID_KINDS)
        if kind == "email":
            row["email"] = rng.choice(("anna.example.com", "bob@", "carl@@mail.de", "x y@z.com"))
        elif kind == "phone":
            row["phone"] = rng.choice(("+49 123", "call me maybe", "+999 1234567"))
        elif kind == "time_zone":
            row["time_zone"] = rng.choice(("Mars/Olympus_Mons", "CEST+2", "Europe/Atlantis"))
        elif kind == "locale":
            row["locale"] = rng.choice(("german", "english-uk", "12"))
        elif kind == "tags":
            row["tags"] = ["vip!", "newsletter"]
        else:
            row.update(external_id="", email="", phone="")
        return row

    def _duplicate(self, rng: random.Random, original: Row) -> Row:
        email = original["email"]
        return {
            "external_id": "",
            "email": email.upper() if rng.random() < 0.5 else email,
            "phone": "",
            "first_name": original["first_name"],
            "last_name": original["last_name"],
            "time_zone": "",
            "locale": original["locale"],
            "tags": [*original["tags"], "repeat-buyer"],
        }


def write_csv(rows: CustomerRows, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([",".join(row[c]) if c == "tags" else row[c] for c in COLUMNS])


def write_ndjson(rows: CustomerRows, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            present = {c: row[c] for c in COLUMNS if row[c]}
            out.write(json.dumps(present, ensure_ascii=False, separators=(",", ":")) + "\n")


def csv_bytes(rows: CustomerRows) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([",".join(row[c]) if c == "tags" else row[c] for c in COLUMNS])
    return out.getvalue().encode()
