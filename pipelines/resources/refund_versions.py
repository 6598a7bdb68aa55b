"""Versions of credit notes, and the ``raw.refund_lines`` frame built from them.

- A version of a credit note is the content of one valid refund message (its header and its
  line sums, ``records.refund_ledger.Refund``; not the message id). ``Versions.add`` keeps every
  distinct version of a credit note with its first delivery (file, line, message id) and how
  many times it came: a redelivery with the same content is the same version; different content
  with the same ``version_date`` as a version already seen (both without ``status.date`` and the
  same ``credit_note_date`` included) is a "conflicting redelivery", and the first one is kept.
- ``version_date``: ``status.date``, else ``credit_note_date``. ``version_key``: the first 16 hex
  digits of the sha1 of a canonical JSON of the version (dates as ISO strings, amounts as integer
  counts of ``10^-10`` units, lines sorted by order item, the credit note number included). The
  warehouse's stored versions carry these keys: the canonical form must not change.
- ``content(refund)``: a validated ``Refund`` -> (credit note number, header, line sums), the
  version as it is kept; its low-cardinality strings (status codes, types, reasons) are one
  object per distinct value (less memory for millions of versions).
- ``Versions.frame()``: one row per (version, order item) with exactly the columns of
  ``raw.refund_lines`` (``REFUND_LINES_SCHEMA``); amounts as exact ``DECIMAL(38,10)``.
- ``FileVersions``: the deliveries of ONE file (``DELIVERIES_SCHEMA``: where, which version, its
  reject payload) and the distinct versions they carry (``VERSIONS_SCHEMA``: the content
  columns), for the incremental store; the conflict rule is not applied there (it spans files).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, Iterable, Sequence

import polars as pl
import pyarrow as pa

from pipelines.records.refund_ledger import SCALE, LineSums, Refund

AMOUNT = pl.Decimal(38, SCALE)
REFUND_LINES_SCHEMA: dict[str, pl.DataType] = {
    "credit_note_number": pl.Utf8,
    "version_key": pl.Utf8,
    "version_date": pl.Datetime("us"),
    "order_line_reference": pl.Utf8,
    "order_line": pl.Utf8,
    "order_reference": pl.Utf8,
    "store_id": pl.Utf8,
    "sales_channel_id": pl.Utf8,
    "credit_note_date": pl.Datetime("us"),
    "rma_reference": pl.Utf8,
    "refund_type": pl.Utf8,
    "refund_reason": pl.Utf8,
    "status_code": pl.Utf8,
    "status_date": pl.Datetime("us"),
    "currency": pl.Utf8,
    "line_reason": pl.Utf8,
    "refunded_gross": AMOUNT,
    "refunded_net": AMOUNT,
    "refunded_vat": AMOUNT,
    "total_gross": AMOUNT,
    "payment_count": pl.Int32,
    "message_id": pl.Utf8,
    "source_file": pl.Utf8,
    "source_line": pl.Int32,
    "delivery_count": pl.Int32,
}
# state.refund_versions: the content of a version, without its deliveries
VERSIONS_SCHEMA: dict[str, pl.DataType] = {
    name: dtype for name, dtype in REFUND_LINES_SCHEMA.items()
    if name not in ("message_id", "source_file", "source_line", "delivery_count")}
# state.refund_ledger_deliveries: one row per valid refund message of a file
DELIVERIES_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.Utf8, "line": pl.Int32, "credit_note_number": pl.Utf8, "version_key": pl.Utf8,
    "version_date": pl.Datetime("us"), "status_dated": pl.Boolean, "message_id": pl.Utf8,
    "order_reference": pl.Utf8, "payload": pl.Utf8,
}
# the header of a version, in this order (the version_key's canonical order too)
HEADER = ("order_reference", "store_id", "sales_channel_id", "credit_note_date", "rma_reference",
          "refund_type", "refund_reason", "status_code", "status_date", "currency")
LINE = ("order_line", "line_reason", "refunded_gross", "refunded_net", "refunded_vat", "total_gross",
        "payment_count")  # the fields of LineSums
_STATUS_DATE = HEADER.index("status_date")
_CREDIT_NOTE_DATE = HEADER.index("credit_note_date")
_AMOUNTS = slice(LINE.index("refunded_gross"), LINE.index("total_gross") + 1)
_DATES = (_CREDIT_NOTE_DATE, _STATUS_DATE)
_HEADER_AT = {name: i for i, name in enumerate(HEADER)}
_LINE_AT = {name: j for j, name in enumerate(LINE)}
_CANONICAL = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # what json.dumps(..., these) uses

Header = tuple  # the values of HEADER
Lines = dict  # order item -> LineSums

_INTERNED: dict[str, str] = {}


def _intern(value: str | None) -> str | None:
    """One string object per distinct low-cardinality value (status codes, types...): less memory."""
    if value is None or len(value) > 64:
        return value
    if len(_INTERNED) > 100_000:
        _INTERNED.clear()
    return _INTERNED.setdefault(value, value)


def content(refund: Refund) -> tuple[str, Header, Lines]:
    """A valid refund -> (credit note number, header, order item -> LineSums): a version."""
    status = refund.status
    code, date = (status.code, status.date) if status is not None else (None, None)
    header = (refund.order_id, _intern(refund.store_id), _intern(refund.sales_channel_id), refund.credit_note_date,
              refund.rma, _intern(refund.refund_type), _intern(refund.refund_reason), _intern(code), date,
              _intern(refund.currency))
    lines = {item: s if s.reason is None else LineSums(s.order_line, _intern(s.reason), *s[2:])
             for item, s in refund.sums().items()}
    return refund.credit_note_number, header, lines


def version_date(header: Header) -> datetime | None:
    """When a version became true: ``status.date``, else ``credit_note_date``."""
    status_date = header[_STATUS_DATE]
    return status_date if status_date is not None else header[_CREDIT_NOTE_DATE]


def version_key(credit_note: str, header: Header, lines: Lines) -> str:
    """First 16 hex digits of the sha1 of a canonical JSON of the version.

    Canonical: dates as ISO strings, amounts as their exact integer 10^-10 units (so "1.5" and
    "1.50" are one version), lines sorted by order item. The credit note number is part of it,
    so a key is unique across credit notes too.
    """
    head = list(header)
    for i in _DATES:
        if head[i] is not None:
            head[i] = head[i].isoformat()
    body = [credit_note, head, [[item, *values] for item, values in sorted(lines.items())]]
    return hashlib.sha1(_CANONICAL.encode(body).encode("utf-8")).hexdigest()[:16]


def _amounts(name: str, units: Sequence[int]) -> pl.Series:
    """A ``DECIMAL(38,10)`` series of 10^-10 unit counts, exact: the counts are the decimal's
    unscaled 128-bit integers (Arrow's decimal128 layout), so no ``Decimal`` object is made."""
    data = b"".join(u.to_bytes(16, "little", signed=True) for u in units)
    return pl.Series(name, pa.Array.from_buffers(pa.decimal128(38, SCALE), len(units), [None, pa.py_buffer(data)]))


@dataclass(slots=True)
class Version:
    """One distinct content of a credit note, with its first delivery."""

    header: Header
    lines: Lines
    message_id: str | None
    file: str
    line_no: int
    deliveries: int = 1


class Versions:
    """Every distinct version of every credit note seen, in arrival order."""

    def __init__(self) -> None:
        # credit note -> its version, or its versions in arrival order when there are several
        self._kept: dict[str, Version | list[Version]] = {}
        self.duplicates = 0   # identical redeliveries folded into a version already seen

    @property
    def credit_notes(self) -> int:
        return len(self._kept)

    def add(self, credit_note: str, header: Header, lines: Lines, message_id: str | None, file: str,
            line_no: int) -> str | None:
        """Keep a delivery of a credit note: None when it is a new version or an identical
        redelivery, else the reason it is rejected (a conflicting redelivery)."""
        previous = self._kept.get(credit_note)
        new = Version(header, lines, message_id, file, line_no)
        if previous is None:
            self._kept[credit_note] = new
            return None
        versions = previous if isinstance(previous, list) else [previous]
        same = next((v for v in versions if v.header == header and v.lines == lines), None)
        if same is not None:  # an identical redelivery: the same version
            same.deliveries += 1
            self.duplicates += 1
            return None
        date = version_date(header)
        clash = next((v for v in versions if version_date(v.header) == date), None)
        if clash is not None:
            dated = "status date" if header[_STATUS_DATE] is not None else \
                "version date (no status date; credit note date)"
            return (f"conflicting redelivery: credit note {credit_note} was first delivered at "
                    f"{clash.file}:{clash.line_no} with the same {dated} {date.isoformat()} and "
                    f"different content; the first delivery is kept")
        if isinstance(previous, list):
            previous.append(new)
        else:
            self._kept[credit_note] = [previous, new]
        return None

    def frame(self) -> tuple[pl.DataFrame, int]:
        """(The frame, the number of versions.)"""
        versions = [(credit_note, version, version_key(credit_note, version.header, version.lines),
                     version_date(version.header))
                    for credit_note, found in self._kept.items()
                    for version in (found if isinstance(found, list) else (found,))]
        return frame_of(versions, REFUND_LINES_SCHEMA), len(versions)


def frame_of(versions: Sequence[tuple[str, Version, str, datetime]],
             schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One row per (version, order item) of ``versions`` ((credit note, version, version_key,
    version_date) each), with the columns of ``schema`` (``REFUND_LINES_SCHEMA`` or
    ``VERSIONS_SCHEMA``). Built one column at a time, each made into its series before the next is
    read, so only one column of Python values is alive at a time (a ledger can hold millions of
    refund lines)."""
    # one entry per row (references, not copies): its version, its header, its order item, its sums
    of_row = [entry for entry in versions for _ in entry[1].lines]
    headers = [entry[1].header for entry in of_row]
    items = [item for _, version, _, _ in versions for item in version.lines]
    sums = [line for _, version, _, _ in versions for line in version.lines.values()]
    per_version = {"credit_note_number": 0, "version_key": 2, "version_date": 3}
    of_version = {"message_id": "message_id", "source_file": "file", "source_line": "line_no",
                  "delivery_count": "deliveries"}

    def column(name: str) -> Iterable[Any]:
        if name in per_version:
            return map(itemgetter(per_version[name]), of_row)
        if name in of_version:
            return map(attrgetter(of_version[name]), map(itemgetter(1), of_row))
        if name in _HEADER_AT:
            return map(itemgetter(_HEADER_AT[name]), headers)
        if name == "order_line_reference":
            return items
        return map(itemgetter(_LINE_AT[name]), sums)

    series = [_amounts(name, list(column(name))) if dtype == AMOUNT
              else pl.Series(name, list(column(name)), dtype=dtype)
              for name, dtype in schema.items()]
    return pl.DataFrame(series)


class FileVersions:
    """The valid refund deliveries of ONE file and the distinct versions they carry, for the
    incremental ledger (``pipelines.resources.refund_store``). No conflict rule here: whether a
    delivery is a conflicting redelivery depends on the deliveries of every file (the first one
    of a credit note and version date, in relative path and line order, wins), so the store
    decides it across files."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._kept: dict[str, list[tuple[Version, str]]] = {}   # credit note -> (version, key)
        self.deliveries: dict[str, list[Any]] = {name: [] for name in DELIVERIES_SCHEMA}

    def add(self, credit_note: str, header: Header, lines: Lines, message_id: str | None, line_no: int,
            shown: str) -> None:
        """Keep one delivery (``shown``: its reject payload, should it turn out a conflict)."""
        versions = self._kept.setdefault(credit_note, [])
        found = next(((v, key) for v, key in versions if v.header == header and v.lines == lines), None)
        if found is None:
            found = (Version(header, lines, message_id, self.file, line_no), version_key(credit_note, header, lines))
            versions.append(found)
        else:
            found[0].deliveries += 1
        d = self.deliveries
        d["path"].append(self.file)
        d["line"].append(line_no)
        d["credit_note_number"].append(credit_note)
        d["version_key"].append(found[1])
        d["version_date"].append(version_date(header))
        d["status_dated"].append(header[_STATUS_DATE] is not None)
        d["message_id"].append(message_id)
        d["order_reference"].append(header[0])
        d["payload"].append(shown)

    def frames(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(deliveries, ``DELIVERIES_SCHEMA``; distinct versions, ``VERSIONS_SCHEMA``)."""
        versions = [(credit_note, version, key, version_date(version.header))
                    for credit_note, found in self._kept.items() for version, key in found]
        return (pl.DataFrame(self.deliveries, schema=DELIVERIES_SCHEMA),
                frame_of(versions, VERSIONS_SCHEMA))
