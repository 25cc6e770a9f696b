"""PostgreSQL arrays in their binary wire format (``array_send``), read whole by numpy.

A sweep chunk's columns travel as one array each. Decoded by the driver, every element becomes
a Python object (a datetime, a float, an int) that numpy then copies one by one; times read as
numbers need ``extract(epoch ...)``, numeric arithmetic in the database. ``array_send`` gives
the array's bytes as PostgreSQL keeps them (big-endian, each element after its length), which
numpy reads in one call. The arrays must hold no NULL (the SQL replaces them, e.g. with
``'-infinity'`` for a time or ``'NaN'`` for a float), so every element has the same size.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import numpy as np

from lifecycle_service.domain.review_arrays import MISSING_TIME

_HEADER: Final = struct.Struct(">iiI")  # dimensions, has-NULLs flag, element type oid
_DIMENSION: Final = struct.Struct(">ii")  # length, lower bound
# PostgreSQL's timestamps count microseconds from 2000-01-01; -infinity is the int64 minimum.
_POSTGRES_EPOCH_US: Final = 946_684_800 * 1_000_000
_MINUS_INFINITY: Final = np.iinfo(np.int64).min


def _elements(data: bytes, element: Any) -> Any:
    """The elements of a one-dimensional array of fixed-size ``element`` values (numpy type)."""
    dimensions, has_nulls, _ = _HEADER.unpack_from(data)
    if dimensions == 0:
        return np.empty(0, dtype=[("value", element)])["value"]
    if dimensions != 1 or has_nulls:
        raise ValueError("expected a one-dimensional array without NULL")
    length, _ = _DIMENSION.unpack_from(data, _HEADER.size)
    layout = np.dtype([("size", ">i4"), ("value", element)])
    offset = _HEADER.size + _DIMENSION.size
    return np.frombuffer(data, dtype=layout, count=length, offset=offset)["value"]


def int_array(data: bytes, element: str = ">i8") -> Any:
    """An ``int2[]``/``int4[]``/``int8[]`` (``element`` ``>i2``/``>i4``/``>i8``) as int64."""
    return _elements(data, element).astype(np.int64)


def float_array(data: bytes) -> Any:
    """A ``float8[]`` as float64 (NaN stays NaN)."""
    return _elements(data, ">f8").astype(np.float64)


def time_array(data: bytes) -> Any:
    """A ``timestamptz[]`` as microseconds since the Unix epoch; -infinity as MISSING_TIME."""
    raw = _elements(data, ">i8").astype(np.int64)
    return np.where(raw == _MINUS_INFINITY, MISSING_TIME, raw + _POSTGRES_EPOCH_US)


def tid_array(data: bytes) -> Any:
    """A ``tid[]`` as a structured array of ``block`` and ``offset``."""
    return _elements(data, [("block", ">u4"), ("offset", ">u2")])


def tid_tuples(tids: Any) -> list[tuple[int, int]]:
    """Tuple ids of :func:`tid_array` as (block, offset) pairs, as the driver sends a ``tid``."""
    return list(zip(tids["block"].tolist(), tids["offset"].tolist(), strict=True))
