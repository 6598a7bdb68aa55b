"""Reader of the OMS refund message archive (sources.md section 3): a directory of ``*.jsonl``.

``RefundLedgerResource.read_ledger()`` streams every ``*.jsonl`` file of the directory, in name
order, line by line, and returns one row per (credit note, order line) with exactly the columns
of ``raw.refund_lines`` (``sql/schema/create_raw_refund_ledger_tables.sql``) minus
``business_date``.

- Only ``magento.postsales.refund_management.updated`` messages are refunds; other methods
  are counted and ignored.
- Delivery is at least once: the same ``credit_note_number`` seen again (same file or
  another) is one refund. The version with the latest ``status.date`` is kept (ties: the
  first seen) and ``delivery_count`` says how many times it came. A redelivery with the same
  status date but different content is rejected as a "conflicting redelivery".
- A line that is not valid JSON, a refund without ``credit_note_number``/``order_id``/lines, a
  missing or non-numeric amount, or a bad date goes to the rejects frame with
  ``<file>:<line>`` (and the credit note when known), the reason and the raw line (the
  ``user`` value redacted, truncated to 2,000 characters); the other lines still load.
- Amounts are ``Decimal`` with 2 places (DuckDB ``DECIMAL(18,2)``): ``refunded_*`` sum the
  payments whose ``status.code`` is ``REFUNDED``, ``total_gross`` sums all payments; a credit
  note listing the same ``order_item_id`` twice gives one row with the sums.
- The ``user`` field (a staff member's name) is never kept.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import polars as pl

from pipelines.errors import SourceUnavailable

SOURCE = "refund_ledger"
REFUND_METHOD = "magento.postsales.refund_management.updated"
PAYLOAD_MAX_CHARS = 2000
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal(10) ** 16  # DECIMAL(18,2)
MAX_CENTS = 10 ** 18
_USER_RE = re.compile(r'("user"\s*:\s*)"(?:[^"\\]|\\.)*"')
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

REFUND_LINES_SCHEMA: dict[str, pl.DataType] = {
    "credit_note_number": pl.Utf8,
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
    "refunded_gross": pl.Decimal(18, 2),
    "refunded_net": pl.Decimal(18, 2),
    "refunded_vat": pl.Decimal(18, 2),
    "total_gross": pl.Decimal(18, 2),
    "payment_count": pl.Int32,
    "message_id": pl.Utf8,
    "source_file": pl.Utf8,
    "source_line": pl.Int32,
    "delivery_count": pl.Int32,
}
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
}
_HEADER = ("order_reference", "store_id", "sales_channel_id", "credit_note_date", "rma_reference",
           "refund_type", "refund_reason", "status_code", "status_date", "currency")
_LINE = ("order_line", "line_reason", "refunded_gross", "refunded_net", "refunded_vat", "total_gross",
         "payment_count")


@dataclass
class LedgerStats:
    files: int = 0
    lines: int = 0                   # every line of every file, blank ones included
    messages: int = 0                # lines that are JSON-RPC messages (any method)
    refund_messages: int = 0         # messages of the refund method
    credit_notes: int = 0            # distinct credit notes loaded
    duplicates_collapsed: int = 0    # redeliveries folded into an already seen credit note
    ignored_other_methods: int = 0   # messages of other methods (return_management, ...)
    rejects: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {
            "files_read": self.files,
            "lines_read": self.lines,
            "messages": self.messages,
            "refund_messages": self.refund_messages,
            "credit_notes": self.credit_notes,
            "duplicates_collapsed": self.duplicates_collapsed,
            "ignored_other_methods": self.ignored_other_methods,
            "rejects": self.rejects,
        }


@dataclass
class LedgerRead:
    """The refund lines to load, the rejected lines, and counts."""

    refund_lines: pl.DataFrame
    rejects: pl.DataFrame
    stats: LedgerStats = field(default_factory=LedgerStats)


class BadRecord(ValueError):
    """A refund message that cannot be loaded; the message is the reject reason."""


# --------------------------------------------------------------------------- field parsing

_INTERNED: dict[str, str] = {}


def _intern(value: str | None) -> str | None:
    """One string object per distinct low-cardinality value (status codes, types...): less memory."""
    if value is None or len(value) > 64:
        return value
    if len(_INTERNED) > 100_000:
        _INTERNED.clear()
    return _INTERNED.setdefault(value, value)


def _scalar(value: Any, name: str, problems: list[str], *, required: bool = False) -> str | None:
    if type(value) is str:
        stripped = value.strip()
        if stripped:
            return stripped
        if required:
            problems.append(f"missing {name}")
        return None
    if value is None:
        if required:
            problems.append(f"missing {name}")
        return None
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        problems.append(f"{name} is not a string: {json.dumps(value, default=str)[:80]}")
        return None
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    return value.strip() if isinstance(value, str) else str(value)


def _timestamp(value: Any, name: str, problems: list[str], *, required: bool = False) -> datetime | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        if required:
            problems.append(f"missing {name}")
        return None
    if not isinstance(value, str):
        problems.append(f"bad date in {name}: {value!r}")
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.append(f"bad date in {name}: {value!r}")
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def _amount(value: Any, name: str, problems: list[str]) -> int:
    """A decimal string (or JSON number) with at most 2 decimal places, as integer cents."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        problems.append(f"missing amount {name}")
        return 0
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        problems.append(f"non-numeric amount {name}: {json.dumps(value, default=str)[:80]}")
        return 0
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except InvalidOperation:
        problems.append(f"non-numeric amount {name}: {str(value)[:80]!r}")
        return 0
    if not number.is_finite():
        problems.append(f"non-numeric amount {name}: {str(value)[:80]!r}")
        return 0
    if abs(number) >= MAX_AMOUNT:
        problems.append(f"amount {name} is out of range: {str(value)[:80]!r}")
        return 0
    cents = number.scaleb(2)
    if cents != cents.to_integral_value():
        problems.append(f"amount {name} has more than 2 decimal places: {str(value)[:80]!r}")
        return 0
    return int(cents)


def parse_refund(refund: Any) -> tuple[str, tuple, dict[str, tuple]]:
    """``params.refund`` -> (credit note, header values, {order_item_id: line values}).

    Raises ``BadRecord`` with every problem found (joined by "; "). The ``user`` field and
    free-text descriptions are not read.
    """
    if not isinstance(refund, dict):
        raise BadRecord("message has no params.refund object")
    problems: list[str] = []
    credit_note = _scalar(refund.get("credit_note_number"), "credit_note_number", problems, required=True)
    order_reference = _scalar(refund.get("order_id"), "order_id", problems, required=True)
    status = refund.get("status")
    if status is None:
        status = {}
    elif not isinstance(status, dict):
        problems.append("status is not an object")
        status = {}
    currency = _scalar(refund.get("currency"), "currency", problems)
    if currency is not None and not _CURRENCY_RE.fullmatch(currency):
        problems.append(f"currency is not an ISO code: {currency[:20]!r}")
    header = (
        order_reference,
        _intern(_scalar(refund.get("store_id"), "store_id", problems)),
        _intern(_scalar(refund.get("sales_channel_id"), "sales_channel_id", problems)),
        _timestamp(refund.get("credit_note_date"), "credit_note_date", problems, required=True),
        _scalar(refund.get("rma"), "rma", problems),
        _intern(_scalar(refund.get("refund_type"), "refund_type", problems)),
        _intern(_scalar(refund.get("refund_reason"), "refund_reason", problems)),
        _intern(_scalar(status.get("code"), "status.code", problems)),
        _timestamp(status.get("date"), "status.date", problems),
        _intern(currency),
    )
    raw_lines = refund.get("lines")
    lines: dict[str, list[Any]] = {}
    if not isinstance(raw_lines, list) or not raw_lines:
        problems.append("refund has no lines")
        raw_lines = []
    for n, line in enumerate(raw_lines, start=1):
        where = f"lines[{n}]"
        if not isinstance(line, dict):
            problems.append(f"{where} is not an object")
            continue
        item = _scalar(line.get("order_item_id"), f"{where}.order_item_id", problems, required=True)
        payments = line.get("payments")
        if payments is None:
            payments = []
        if not isinstance(payments, list):
            problems.append(f"{where}.payments is not a list")
            payments = []
        refunded = [0, 0, 0]  # cents
        total_gross = 0
        for m, payment in enumerate(payments, start=1):
            pwhere = f"{where}.payments[{m}]"
            details = payment.get("details") if isinstance(payment, dict) else None
            if not isinstance(details, dict):
                problems.append(f"{pwhere} has no details")
                continue
            gross = _amount(details.get("cost_gross"), f"{pwhere}.cost_gross", problems)
            net = _amount(details.get("cost_net"), f"{pwhere}.cost_net", problems)
            vat = _amount(details.get("cost_vat"), f"{pwhere}.cost_vat", problems)
            pstatus = payment.get("status")
            code = pstatus.get("code") if isinstance(pstatus, dict) else None
            total_gross += gross
            if isinstance(code, str) and code.strip().upper() == "REFUNDED":
                refunded[0] += gross
                refunded[1] += net
                refunded[2] += vat
        if item is None:
            continue
        values = [_scalar(line.get("order_line"), f"{where}.order_line", problems),
                  _intern(_scalar(line.get("reason"), f"{where}.reason", problems)),
                  refunded[0], refunded[1], refunded[2], total_gross, len(payments)]
        if item in lines:  # the same order line twice in one credit note: one row, summed
            kept = lines[item]
            kept[0] = kept[0] if kept[0] is not None else values[0]
            kept[1] = kept[1] if kept[1] is not None else values[1]
            for i in range(2, 7):
                kept[i] += values[i]
        else:
            lines[item] = values
    for item, values in lines.items():
        for i in range(2, 6):
            if abs(values[i]) >= MAX_CENTS:
                problems.append(f"sum of amounts for order line {item} is out of range")
    if problems:
        raise BadRecord("; ".join(problems), credit_note)
    return credit_note, header, {k: tuple(v) for k, v in lines.items()}


def redact(line: str) -> str:
    """The raw line for a reject payload: ``user`` value hidden, at most 2,000 characters."""
    return _USER_RE.sub(r'\1"[redacted]"', line)[:PAYLOAD_MAX_CHARS]


# --------------------------------------------------------------------------- the reader

@dataclass(slots=True)
class _Kept:
    status_date: datetime | None
    header: tuple
    lines: dict[str, tuple]
    message_id: str | None
    file: str
    line_no: int
    deliveries: int = 1


class RefundLedgerResource(dg.ConfigurableResource):
    """The directory of archived OMS messages (``REFUND_LEDGER_PATH``), ``*.jsonl`` files."""

    path: str

    def files(self) -> list[Path]:
        directory = Path(self.path)
        if not directory.is_dir():
            raise SourceUnavailable(f"refund ledger directory not found: {self.path}")
        try:
            names = os.listdir(directory)
        except OSError as exc:
            raise SourceUnavailable(
                f"refund ledger directory not readable: {self.path}: {exc.strerror or exc}") from None
        return sorted((directory / n for n in names if n.endswith(".jsonl") and (directory / n).is_file()),
                      key=lambda p: p.name)

    def _lines(self, path: Path) -> Iterator[tuple[int, bytes]]:
        try:
            with path.open("rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    yield number, raw
        except OSError as exc:
            raise SourceUnavailable(
                f"refund ledger file not readable: {path}: {exc.strerror or exc}") from None

    def read_ledger(self) -> LedgerRead:
        stats = LedgerStats()
        rejects: dict[str, list[str]] = {c: [] for c in REJECTS_SCHEMA}
        kept: dict[str, _Kept] = {}

        def reject(key: str, reason: str, text: str) -> None:
            stats.rejects += 1
            rejects["source"].append(SOURCE)
            rejects["record_key"].append(key)
            rejects["reason"].append(reason)
            rejects["payload"].append(redact(text))

        for path in self.files():
            stats.files += 1
            name = path.name
            for number, raw in self._lines(path):
                stats.lines += 1
                key = f"{name}:{number}"
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    reject(key, "line is not valid UTF-8", raw.decode("utf-8", "replace"))
                    continue
                if number == 1:
                    text = text.lstrip("\ufeff")
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    message = json.loads(text, parse_float=Decimal)
                except ValueError as exc:  # JSONDecodeError, or a number too large
                    reject(key, f"invalid JSON: {exc}", text)
                    continue
                if not isinstance(message, dict) or not isinstance(message.get("method"), str):
                    reject(key, "not a JSON-RPC message (no method)", text)
                    continue
                stats.messages += 1
                if message["method"] != REFUND_METHOD:
                    stats.ignored_other_methods += 1
                    continue
                stats.refund_messages += 1
                params = message.get("params")
                refund = params.get("refund") if isinstance(params, dict) else None
                try:
                    credit_note, header, lines = parse_refund(refund)
                except BadRecord as exc:
                    reason, credit_note = exc.args[0], (exc.args[1] if len(exc.args) > 1 else None)
                    reject(f"{key}:{credit_note}" if credit_note else key, reason, text)
                    continue
                message_id = _scalar(message.get("id"), "id", [])
                status_date = header[_HEADER.index("status_date")]
                previous = kept.get(credit_note)
                if previous is None:
                    kept[credit_note] = _Kept(status_date, header, lines, message_id, name, number)
                    continue
                if _later(status_date, previous.status_date):
                    previous.status_date, previous.header, previous.lines = status_date, header, lines
                    previous.message_id, previous.file, previous.line_no = message_id, name, number
                elif status_date == previous.status_date and (header, lines) != (previous.header, previous.lines):
                    reject(f"{key}:{credit_note}",
                           f"conflicting redelivery: credit note {credit_note} was first delivered at "
                           f"{previous.file}:{previous.line_no} with the same status date and different "
                           f"content; the first delivery is kept", text)
                    continue
                previous.deliveries += 1
                stats.duplicates_collapsed += 1

        stats.credit_notes = len(kept)
        return LedgerRead(refund_lines=_frame(kept), rejects=pl.DataFrame(rejects, schema=REJECTS_SCHEMA),
                          stats=stats)


def _later(candidate: datetime | None, current: datetime | None) -> bool:
    """Is ``candidate`` a strictly later status date? (no date sorts before any date)"""
    if candidate is None:
        return False
    return current is None or candidate > current


def _frame(kept: dict[str, _Kept]) -> pl.DataFrame:
    """Build the frame one column at a time (a ledger can hold millions of refund lines)."""

    def records() -> Iterator[tuple[str, _Kept, str, tuple]]:
        for credit_note, record in kept.items():
            for item, values in record.lines.items():
                yield credit_note, record, item, values

    getters: dict[str, Any] = {
        "credit_note_number": lambda cn, rec, item, vals: cn,
        "order_line_reference": lambda cn, rec, item, vals: item,
        "message_id": lambda cn, rec, item, vals: rec.message_id,
        "source_file": lambda cn, rec, item, vals: rec.file,
        "source_line": lambda cn, rec, item, vals: rec.line_no,
        "delivery_count": lambda cn, rec, item, vals: rec.deliveries,
    }
    for i, name in enumerate(_HEADER):
        getters[name] = lambda cn, rec, item, vals, i=i: rec.header[i]
    for i, name in enumerate(_LINE):
        if isinstance(REFUND_LINES_SCHEMA[name], pl.Decimal):
            getters[name] = lambda cn, rec, item, vals, i=i: Decimal(vals[i]).scaleb(-2)
        else:
            getters[name] = lambda cn, rec, item, vals, i=i: vals[i]
    series = []
    for name, dtype in REFUND_LINES_SCHEMA.items():
        get = getters[name]
        series.append(pl.Series(name, [get(*r) for r in records()], dtype=dtype))
    return pl.DataFrame(series)
