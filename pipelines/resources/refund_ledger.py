"""Reader of the OMS refund message archive (sources.md section 3): a directory of ``*.jsonl``.

``RefundLedgerResource.read_ledger()`` streams every ``*.jsonl`` and ``*.jsonl.gz`` file of the
directory and of its subfolders, in relative-path order, line by line, and returns one row per
(credit note VERSION, order line) with exactly the columns of ``raw.refund_lines``
(``sql/schema/create_raw_refund_ledger_tables.sql``) minus ``business_date``. Files with other
extensions are skipped and listed in the stats.

- Only ``magento.postsales.refund_management.updated`` messages are refunds; other methods
  are counted and ignored.
- A version of a credit note is the parsed content of one refund message (header and lines;
  not the message id). Every distinct version is kept, with its ``version_date``
  (``status.date``, else ``credit_note_date``) and ``version_key`` (a hash of the content):
  the reconciliation takes, per credit note, the latest version dated ``<= T``, so the order
  of files and lines does not matter.
- Delivery is at least once: a redelivery with the same parsed content is the same version
  (``delivery_count`` says how many times it came; file, line and message id are those of the
  first delivery). A message with different content but the same ``version_date`` as a version
  already seen (including both without ``status.date`` and with the same ``credit_note_date``)
  is rejected as a "conflicting redelivery"; the first one is kept.
- A line that is not valid JSON, a refund without ``credit_note_number``/``order_id``/lines, a
  missing, non-numeric, non-finite or out-of-range amount, or a bad date goes to the rejects
  frame with ``<file>:<line>`` (and the credit note when known), the reason, the raw line (the
  ``user`` value redacted, truncated to 2,000 characters) and, whenever they can be read from
  the message, the credit note number and the order reference; the other lines still load.
- Amounts are exact decimals: no rounding, any number of decimal places up to 10 (three-decimal
  currencies, sub-cent VAT splits), ``abs < 10^28``, as DuckDB ``DECIMAL(38,10)``. An amount
  that cannot be kept exactly there is a reject. Internally an amount is an integer count of
  ``10^-10`` units (exact, compact, and sums cannot be rounded by a ``Decimal`` context);
  ``refunded_*`` sum the payments whose ``status.code`` is ``REFUNDED``, ``total_gross`` sums
  all payments; a credit note listing the same ``order_item_id`` twice gives one row with the
  sums.
- The ``user`` field (a staff member's name) is never kept.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import polars as pl

from pipelines.errors import SourceUnavailable

SOURCE = "refund_ledger"
REFUND_METHOD = "magento.postsales.refund_management.updated"
PAYLOAD_MAX_CHARS = 2000
SUFFIXES = (".jsonl", ".jsonl.gz")
SCALE = 10                           # DECIMAL(38,10): decimal places kept
MAX_INTEGER_DIGITS = 38 - SCALE      # abs(amount) < 10^28
MAX_UNITS = 10 ** 38                 # a sum (in 10^-10 units) must stay below this
SKIPPED_LISTED = 20                  # skipped files named in the stats (all are counted)
_EXACT = Context(prec=60)            # wide enough for any DECIMAL(38,10) value: no rounding
_USER_RE = re.compile(r'("user"\s*:\s*)"(?:[^"\\]|\\.)*"')
_CURRENCY_RE = re.compile(r"[A-Z]{3}")

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
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
    "order_reference": pl.Utf8, "order_line_reference": pl.Utf8, "rma_reference": pl.Utf8,
    "return_reference": pl.Utf8, "credit_note_number": pl.Utf8,
}
_HEADER = ("order_reference", "store_id", "sales_channel_id", "credit_note_date", "rma_reference",
           "refund_type", "refund_reason", "status_code", "status_date", "currency")
_LINE = ("order_line", "line_reason", "refunded_gross", "refunded_net", "refunded_vat", "total_gross",
         "payment_count")
_STATUS_DATE = _HEADER.index("status_date")
_CREDIT_NOTE_DATE = _HEADER.index("credit_note_date")


@dataclass
class LedgerStats:
    files: int = 0
    files_skipped: int = 0           # files of the directory tree that are not *.jsonl / *.jsonl.gz
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why), the first 20
    lines: int = 0                   # every line of every file, blank ones included
    messages: int = 0                # lines that are JSON-RPC messages (any method)
    refund_messages: int = 0         # messages of the refund method
    credit_notes: int = 0            # distinct credit notes loaded
    versions: int = 0                # distinct versions (parsed contents) of those credit notes
    duplicates_collapsed: int = 0    # identical redeliveries folded into an already seen version
    ignored_other_methods: int = 0   # messages of other methods (return_management, ...)
    rejects: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {
            "files_read": self.files,
            "files_skipped": self.files_skipped,
            "lines_read": self.lines,
            "messages": self.messages,
            "refund_messages": self.refund_messages,
            "credit_notes": self.credit_notes,
            "versions": self.versions,
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
    """A refund message that cannot be loaded.

    ``args``: (reason, credit note number or None, order reference or None); the two references
    are given whenever they could be read, so that the reject still names its grain.
    """

    @property
    def reason(self) -> str:
        return self.args[0]

    @property
    def credit_note(self) -> str | None:
        return self.args[1] if len(self.args) > 1 else None

    @property
    def order_reference(self) -> str | None:
        return self.args[2] if len(self.args) > 2 else None


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
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
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
    """A decimal string (or JSON number) as an exact integer count of 10^-10 units.

    Any number of decimal places is fine as long as the value is exact with 10 (trailing zeros
    do not count) and ``abs(value) < 10^28``: what ``DECIMAL(38,10)`` holds. Pure integer
    arithmetic on the digits, no ``Decimal`` context, so nothing is ever rounded.
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        problems.append(f"missing amount {name}")
        return 0
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        problems.append(f"non-numeric amount {name}: {json.dumps(value, default=str)[:80]}")
        return 0
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    except (InvalidOperation, ValueError):
        problems.append(f"non-numeric amount {name}: {str(value)[:80]!r}")
        return 0
    if not number.is_finite():
        problems.append(f"non-finite amount {name}: {str(value)[:80]!r}")
        return 0
    sign, digits, exponent = number.as_tuple()
    coefficient = int("".join(map(str, digits)))
    if coefficient == 0:
        return 0
    while coefficient % 10 == 0:  # 1.500 is 15 x 10^-1: trailing zeros are not decimal places
        coefficient //= 10
        exponent += 1
    if len(str(coefficient)) + exponent > MAX_INTEGER_DIGITS:
        problems.append(f"amount {name} is out of range (abs >= 10^{MAX_INTEGER_DIGITS}, "
                        f"DECIMAL(38,{SCALE})): {str(value)[:80]!r}")
        return 0
    if exponent < -SCALE:
        problems.append(f"amount {name} has more than {SCALE} decimal places and cannot be kept exactly: "
                        f"{str(value)[:80]!r}")
        return 0
    units = coefficient * 10 ** (exponent + SCALE)
    return -units if sign else units


def _decimal(units: int) -> Decimal:
    """10^-10 units -> the exact Decimal (scale 10)."""
    return Decimal(units).scaleb(-SCALE, _EXACT)


def parse_refund(refund: Any) -> tuple[str, tuple, dict[str, tuple]]:
    """``params.refund`` -> (credit note, header values, {order_item_id: line values}).

    Raises ``BadRecord`` with every problem found (joined by "; "), and the credit note number
    and order reference when they are readable. The ``user`` field and free-text descriptions
    are not read. Line amounts are integer 10^-10 units.
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
        refunded = [0, 0, 0]  # 10^-10 units
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
        if any(abs(values[i]) >= MAX_UNITS for i in range(2, 6)):
            problems.append(f"sum of amounts for order line {item} is out of range "
                            f"(abs >= 10^{MAX_INTEGER_DIGITS}, DECIMAL(38,{SCALE}))")
    if problems:
        raise BadRecord("; ".join(problems), credit_note, order_reference)
    return credit_note, header, {k: tuple(v) for k, v in lines.items()}


def version_date(header: tuple) -> datetime | None:
    """When a version became true: ``status.date``, else ``credit_note_date``."""
    status_date = header[_STATUS_DATE]
    return status_date if status_date is not None else header[_CREDIT_NOTE_DATE]


def version_key(credit_note: str, header: tuple, lines: dict[str, tuple]) -> str:
    """First 16 hex digits of the sha1 of a canonical JSON of the parsed version.

    Canonical: dates as ISO strings, amounts as their exact integer 10^-10 units (so "1.5" and
    "1.50" are one version), lines sorted by order item. The credit note number is part of it,
    so a key is unique across credit notes too.
    """
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    content = [credit_note, [plain(v) for v in header],
               [[item, *map(plain, values)] for item, values in sorted(lines.items())]]
    text = json.dumps(content, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def redact(line: str) -> str:
    """The raw line for a reject payload: ``user`` value hidden, at most 2,000 characters."""
    return _USER_RE.sub(r'\1"[redacted]"', line)[:PAYLOAD_MAX_CHARS]


# --------------------------------------------------------------------------- the reader

@dataclass(slots=True)
class _Version:
    """One distinct parsed content of a credit note, with its first delivery."""

    header: tuple
    lines: dict[str, tuple]
    message_id: str | None
    file: str
    line_no: int
    deliveries: int = 1


class _GzipBroken(Exception):
    """A ``.jsonl.gz`` file that cannot be decompressed any further."""


class RefundLedgerResource(dg.ConfigurableResource):
    """The directory of archived OMS messages (``REFUND_LEDGER_PATH``): ``*.jsonl`` and
    ``*.jsonl.gz`` files, in it or in its subfolders."""

    path: str

    def scan(self) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
        """(files to read as (relative path, path), sorted by relative path; skipped files as
        (relative path, why)). Relative paths use ``/``."""
        directory = Path(self.path)
        if not directory.is_dir():
            raise SourceUnavailable(f"refund ledger directory not found: {self.path}")

        def unreadable(exc: OSError) -> None:
            raise SourceUnavailable(
                f"refund ledger directory not readable: {exc.filename or self.path}: {exc.strerror or exc}")

        found: list[tuple[str, Path]] = []
        skipped: list[tuple[str, str]] = []
        for root, dirs, names in os.walk(directory, onerror=unreadable):
            dirs.sort()
            for name in names:
                path = Path(root) / name
                relative = path.relative_to(directory).as_posix()
                if not name.endswith(SUFFIXES):
                    skipped.append((relative, "not a .jsonl or .jsonl.gz file"))
                elif not path.is_file():
                    skipped.append((relative, "not a regular file"))
                else:
                    found.append((relative, path))
        return sorted(found), sorted(skipped)

    def files(self) -> list[Path]:
        return [path for _, path in self.scan()[0]]

    def _lines(self, path: Path) -> Iterator[tuple[int, bytes]]:
        """The raw lines of a file (decompressed for ``.gz``), numbered from 1.

        Raises ``_GzipBroken`` (after the lines that could be read) for a corrupt or truncated
        gzip file, ``SourceUnavailable`` when the file cannot be read at all.
        """
        number = 0
        try:
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                for number, raw in enumerate(handle, start=1):
                    yield number, raw
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise _GzipBroken(number, str(exc) or type(exc).__name__) from None
        except OSError as exc:
            raise SourceUnavailable(
                f"refund ledger file not readable: {path}: {exc.strerror or exc}") from None

    def read_ledger(self) -> LedgerRead:
        stats = LedgerStats()
        rejects: dict[str, list[str | None]] = {c: [] for c in REJECTS_SCHEMA}
        # credit note -> its version, or its versions in arrival order when there are several
        kept: dict[str, _Version | list[_Version]] = {}

        def reject(key: str, reason: str, text: str | None, credit_note: str | None = None,
                   order_reference: str | None = None) -> None:
            stats.rejects += 1
            rejects["source"].append(SOURCE)
            rejects["record_key"].append(key)
            rejects["reason"].append(reason)
            rejects["payload"].append(redact(text) if text is not None else None)
            rejects["order_reference"].append(order_reference)
            rejects["order_line_reference"].append(None)
            rejects["rma_reference"].append(None)
            rejects["return_reference"].append(None)
            rejects["credit_note_number"].append(credit_note)

        files, skipped = self.scan()
        stats.files_skipped = len(skipped)
        stats.skipped = skipped[:SKIPPED_LISTED]
        for name, path in files:
            stats.files += 1
            lines_iter = self._lines(path)
            while True:
                try:
                    number, raw = next(lines_iter)
                except StopIteration:
                    break
                except _GzipBroken as exc:
                    after, why = exc.args
                    reject(f"{name}:{after + 1}",
                           f"gzip file is corrupt or truncated after line {after} ({why}); "
                           f"the rest of the file is not loaded", None)
                    break
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
                    cn = exc.credit_note
                    reject(f"{key}:{cn}" if cn else key, exc.reason, text, cn, exc.order_reference)
                    continue
                message_id = _scalar(message.get("id"), "id", [])
                new = _Version(header, lines, message_id, name, number)
                previous = kept.get(credit_note)
                if previous is None:
                    kept[credit_note] = new
                    continue
                versions = previous if isinstance(previous, list) else [previous]
                same = next((v for v in versions if v.header == header and v.lines == lines), None)
                if same is not None:  # an identical redelivery: the same version
                    same.deliveries += 1
                    stats.duplicates_collapsed += 1
                    continue
                date = version_date(header)
                clash = next((v for v in versions if version_date(v.header) == date), None)
                if clash is not None:
                    dated = "status date" if header[_STATUS_DATE] is not None else \
                        "version date (no status date; credit note date)"
                    reject(f"{key}:{credit_note}",
                           f"conflicting redelivery: credit note {credit_note} was first delivered at "
                           f"{clash.file}:{clash.line_no} with the same {dated} {date.isoformat()} and "
                           f"different content; the first delivery is kept", text,
                           credit_note, header[0])
                    continue
                if isinstance(previous, list):
                    previous.append(new)
                else:
                    kept[credit_note] = [previous, new]

        stats.credit_notes = len(kept)
        frame, stats.versions = _frame(kept)
        return LedgerRead(refund_lines=frame, rejects=pl.DataFrame(rejects, schema=REJECTS_SCHEMA),
                          stats=stats)


def _frame(kept: dict[str, _Version | list[_Version]]) -> tuple[pl.DataFrame, int]:
    """(The frame, the number of versions.) Built one column at a time (a ledger can hold
    millions of refund lines)."""
    versions: list[tuple[str, _Version, str]] = []
    for credit_note, found in kept.items():
        for version in (found if isinstance(found, list) else (found,)):
            versions.append((credit_note, version, version_key(credit_note, version.header, version.lines)))

    def records() -> Iterator[tuple[str, _Version, str, str, tuple]]:
        for credit_note, version, key in versions:
            for item, values in version.lines.items():
                yield credit_note, version, key, item, values

    getters: dict[str, Any] = {
        "credit_note_number": lambda cn, rec, key, item, vals: cn,
        "version_key": lambda cn, rec, key, item, vals: key,
        "version_date": lambda cn, rec, key, item, vals: version_date(rec.header),
        "order_line_reference": lambda cn, rec, key, item, vals: item,
        "message_id": lambda cn, rec, key, item, vals: rec.message_id,
        "source_file": lambda cn, rec, key, item, vals: rec.file,
        "source_line": lambda cn, rec, key, item, vals: rec.line_no,
        "delivery_count": lambda cn, rec, key, item, vals: rec.deliveries,
    }
    for i, name in enumerate(_HEADER):
        getters[name] = lambda cn, rec, key, item, vals, i=i: rec.header[i]
    for i, name in enumerate(_LINE):
        if isinstance(REFUND_LINES_SCHEMA[name], pl.Decimal):
            getters[name] = lambda cn, rec, key, item, vals, i=i: _decimal(vals[i])
        else:
            getters[name] = lambda cn, rec, key, item, vals, i=i: vals[i]
    series = []
    for name, dtype in REFUND_LINES_SCHEMA.items():
        get = getters[name]
        series.append(pl.Series(name, [get(*r) for r in records()], dtype=dtype))
    return pl.DataFrame(series), len(versions)
