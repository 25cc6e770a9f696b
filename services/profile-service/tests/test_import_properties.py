"""Any bytes uploaded as an import get a data-quality report or a 4xx problem, never a 500."""

from __future__ import annotations

import codecs
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profile_testing import Api

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: the suite stays deterministic
    # The app and its database are shared by the examples: no example depends on a clean one.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HEADER_NAMES = [
    "email",
    "E-Mail",
    "Email Address",
    "email_address",
    "Phone Number",
    "First Name",
    "last-name",
    "External ID",
    "time zone",
    "locale",
    "tags",
    "attributes",
    "Shoe Size",
    "",
    " ",
    '"quoted, name"',
    "e\x00mail",
    "ümlaut",
    "email",  # twice in one header, now and then
]
CELLS = st.one_of(
    st.sampled_from(
        [
            "ada@example.com",
            "ADA@Example.COM",
            "not-an-email",
            "+4930123456",
            "030 123456",
            "Europe/Berlin",
            "Mars/Base",
            "de-DE",
            "x" * 300,
            '"unclosed',
            "a,b",
            "\x00",
            "\r",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """CSV-like text with messy headers and cells, in UTF-8 or another encoding."""
    header = draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=6))
    rows = draw(st.lists(st.lists(CELLS, max_size=len(header) + 1), max_size=6))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(cells) for cells in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | CELLS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELLS, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def ndjson_files(draw: st.DrawFn) -> bytes:
    """Lines of JSON: objects with messy keys and any values, and now and then no object."""
    lines = draw(
        st.lists(
            st.dictionaries(st.sampled_from(HEADER_NAMES) | CELLS, JSON_VALUES, max_size=5)
            | JSON_VALUES,
            max_size=5,
        )
    )
    return "\n".join(json.dumps(line) for line in lines).encode()


ANY_UPLOAD = st.one_of(
    st.binary(max_size=2_000),
    csv_files(),
    ndjson_files(),
    st.builds(lambda body: codecs.BOM_UTF8 + body, st.binary(max_size=200)),
)


@PROPERTY_SETTINGS
@given(content=ANY_UPLOAD)
async def test_any_bytes_as_a_csv_file_get_a_report_or_a_4xx(api: Api, content: bytes) -> None:
    response = await api.post(
        "/v1/customers/import", content=content, headers={"Content-Type": "text/csv"}
    )

    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]
    else:
        report = response.json()
        assert report["rows_read"] == report["rows_valid"] + report["rows_invalid"]


@PROPERTY_SETTINGS
@given(content=ANY_UPLOAD)
async def test_any_bytes_as_an_ndjson_file_get_a_report_or_a_4xx(api: Api, content: bytes) -> None:
    response = await api.post(
        "/v1/customers/import", content=content, headers={"Content-Type": "application/x-ndjson"}
    )

    assert response.status_code in (200, 422), response.text
