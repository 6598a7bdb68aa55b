"""Reader of the OMS refund message archive (sources.md section 3): a directory of ``*.jsonl``.

``RefundLedgerResource.scan()`` lists the ``*.jsonl`` and ``*.jsonl.gz`` files of the directory
and of its subfolders, in relative-path order (files with other extensions are skipped and
listed). ``read_file(name, path)`` parses one of them, line by line: its valid refund deliveries,
the distinct versions they carry and its rejected lines (what the incremental store,
``refund_store``, keeps per file). ``read_ledger()`` reads the whole archive at once and returns
one row per (credit note VERSION, order line) with exactly the columns of ``raw.refund_lines``
(``sql/schema/create_raw_refund_ledger_tables.sql``): what the incremental store must equal.

- Only ``magento.postsales.refund_management.updated`` messages are refunds; other methods
  are counted and ignored.
- Every refund message is validated by the models of ``pipelines.records.refund_ledger``
  (required ``credit_note_number``/``order_id``/``credit_note_date``, a non-empty ``lines``,
  ISO dates, a 3-letter currency, exact amounts, the sums per order line: see there).
- A version of a credit note is the parsed content of one refund message (header and lines;
  not the message id). Every distinct version is kept, with its ``version_date``
  (``status.date``, else ``credit_note_date``) and ``version_key`` (a hash of the content):
  the reconciliation takes, per credit note, the latest version dated ``<= T``, so the order
  of files and lines does not matter (``pipelines.resources.refund_versions``).
- Delivery is at least once: a redelivery with the same parsed content is the same version
  (``delivery_count`` says how many times it came; file, line and message id are those of the
  first delivery). A message with different content but the same ``version_date`` as a version
  already seen (including both without ``status.date`` and with the same ``credit_note_date``)
  is rejected as a "conflicting redelivery"; the first one (relative path, then line order) is
  kept. Both rules span files: ``read_ledger`` applies them in reading order,
  ``sql/sources/resolve_refund_ledger.sql`` across the stored files of the incremental store.
- A line that is not UTF-8 or not valid JSON, a JSON value that is not a JSON-RPC message (an
  object with a ``method`` string), and a refund message the models reject go to the rejects
  frame with ``<file>:<line>`` (``:<credit note>`` appended when known), the reason (every
  problem the model found, located: ``params.refund.lines[0].payments[1].details.cost_gross is
  not a number: '12,50'``), a payload and, whenever they can be read from the message, the
  credit note number and the order reference; the other lines still load. A corrupt or
  truncated ``.gz`` file is one reject after the lines that could be read.
- Payloads: a JSON message's payload is ``records.base.payload`` of its model, i.e. only the
  fields the models name (so ``user``, the free-text descriptions and anything else a message
  carries are never kept); a line that cannot be parsed has only its raw text to show: it is
  kept with the values of ``user`` and of ``*description`` fields hidden, at most 2,000
  characters.
- Amounts are exact decimals: no rounding, any number of decimal places up to 10 (three-decimal
  currencies, sub-cent VAT splits), ``abs < 10^28``, as DuckDB ``DECIMAL(38,10)``. An amount
  that cannot be kept exactly there is a reject. ``refunded_*`` sum the payments whose
  ``status.code`` is ``REFUNDED``, ``total_gross`` sums all payments; a credit note listing the
  same ``order_item_id`` twice gives one row with the sums.
- The ``user`` field (a staff member's name) is never kept.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import polars as pl

from pipelines.errors import SourceUnavailable
from pipelines.records.base import PAYLOAD_MAX_CHARS, payload, validate
from pipelines.records.refund_ledger import Message, RefundMessage, references
from pipelines.resources.refund_versions import FileVersions, Versions, content

SOURCE = "refund_ledger"
REFUND_METHOD = "magento.postsales.refund_management.updated"
SUFFIXES = (".jsonl", ".jsonl.gz")
SKIPPED_LISTED = 20                  # skipped files named in the stats (all are counted)
_JSON = json.JSONDecoder(parse_float=Decimal)  # json.loads(text, parse_float=Decimal), without a decoder per line
# a "user" or "...description" string value of a raw line, closed or cut off by the line's end
_HIDDEN_RE = re.compile(r'("(?:user|[A-Za-z_]*description)"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|\\?$)')

REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
    "order_reference": pl.Utf8, "order_line_reference": pl.Utf8, "rma_reference": pl.Utf8,
    "return_reference": pl.Utf8, "credit_note_number": pl.Utf8,
}


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


def _json_error(text: str) -> str:
    """What ``json.loads`` says of a line the decoder refused (it names a BOM, ``decode`` does not)."""
    try:
        json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        return str(exc)
    return "not a single JSON value"


def redact(line: str) -> str:
    """An unparseable raw line for a reject payload: ``user`` and ``*description`` values hidden,
    at most 2,000 characters."""
    return _HIDDEN_RE.sub(r'\1"[redacted]"', line)[:PAYLOAD_MAX_CHARS]


@dataclass
class FileRead:
    """What one file yields (``RefundLedgerResource.read_file``)."""

    path: str                        # relative to the archive
    stats: LedgerStats               # lines, messages, refund_messages, ignored_other_methods, rejects
    deliveries: pl.DataFrame         # refund_versions.DELIVERIES_SCHEMA
    versions: pl.DataFrame           # refund_versions.VERSIONS_SCHEMA
    rejects: pl.DataFrame            # path, line + REJECTS_SCHEMA


class _Rejects:
    """The rejected lines of a read, in reading order."""

    def __init__(self, stats: LedgerStats) -> None:
        self._stats = stats
        self._rows: dict[str, list[Any]] = {"path": [], "line": [], **{c: [] for c in REJECTS_SCHEMA}}

    def add(self, name: str, number: int, reason: str, shown: str | None, credit_note: str | None = None,
            order_reference: str | None = None) -> None:
        self._stats.rejects += 1
        rows = self._rows
        rows["path"].append(name)
        rows["line"].append(number)
        rows["source"].append(SOURCE)
        rows["record_key"].append(f"{name}:{number}:{credit_note}" if credit_note else f"{name}:{number}")
        rows["reason"].append(reason)
        rows["payload"].append(shown)
        rows["order_reference"].append(order_reference)
        for column in ("order_line_reference", "rma_reference", "return_reference"):
            rows[column].append(None)
        rows["credit_note_number"].append(credit_note)

    def frame(self, with_place: bool = False) -> pl.DataFrame:
        """REJECTS_SCHEMA; with ``path`` and ``line`` first when ``with_place``."""
        schema = {"path": pl.Utf8, "line": pl.Int32, **REJECTS_SCHEMA}
        frame = pl.DataFrame(self._rows, schema=schema)
        return frame if with_place else frame.drop("path", "line")


# --------------------------------------------------------------------------- the reader

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
        """The whole archive at once (the conflict rule applied in path and line order): what the
        incremental store (``refund_store``) must equal, and the reader of the parser tests."""
        stats = LedgerStats()
        rejects = _Rejects(stats)
        versions = Versions()
        files, skipped = self.scan()
        stats.files_skipped = len(skipped)
        stats.skipped = skipped[:SKIPPED_LISTED]
        for name, path in files:
            stats.files += 1
            for number, message, record in self._refunds(path, name, stats, rejects.add):
                credit_note, header, lines = content(record.params.refund)
                conflict = versions.add(credit_note, header, lines, record.id, name, number)
                if conflict is not None:
                    rejects.add(name, number, conflict, payload(RefundMessage, message), credit_note, header[0])

        stats.credit_notes = versions.credit_notes
        stats.duplicates_collapsed = versions.duplicates
        frame, stats.versions = versions.frame()
        return LedgerRead(refund_lines=frame, rejects=rejects.frame(), stats=stats)

    def read_file(self, name: str, path: Path) -> FileRead:
        """One file of the archive (``name``: its relative path): its valid refund deliveries,
        the distinct versions they carry and its rejected lines (conflicting redeliveries are
        not decided here: they span files)."""
        stats = LedgerStats(files=1)
        rejects = _Rejects(stats)
        versions = FileVersions(name)
        for number, message, record in self._refunds(path, name, stats, rejects.add):
            credit_note, header, lines = content(record.params.refund)
            versions.add(credit_note, header, lines, record.id, number, payload(RefundMessage, message))
        deliveries, found = versions.frames()
        return FileRead(name, stats, deliveries, found, rejects.frame(with_place=True))

    def _refunds(self, path: Path, name: str, stats: LedgerStats,
                 reject: Any) -> Iterator[tuple[int, Any, RefundMessage]]:
        """(line number, message, its validated record) of every valid refund message of a file;
        other lines are counted, ignored (other methods) or rejected."""
        for number, message in self._messages(path, name, stats, reject):
            if type(message) is not dict or type(message.get("method")) is not str:
                _, why = validate(Message, message)
                reject(name, number, f"not a JSON-RPC message: {why or 'no method'}", payload(Message, message))
                continue
            stats.messages += 1
            if message["method"] != REFUND_METHOD:
                stats.ignored_other_methods += 1
                continue
            stats.refund_messages += 1
            record, why = validate(RefundMessage, message)
            if record is None:
                reject(name, number, why, payload(RefundMessage, message), *references(message))
                continue
            yield number, message, record

    def _messages(self, path: Path, name: str, stats: LedgerStats, reject: Any) -> Iterator[tuple[int, Any]]:
        """(line number, the JSON value of the line) of every non-blank line of a file that is
        UTF-8 JSON; the others are rejected, and so is the rest of a broken gzip file."""
        lines = self._lines(path)
        while True:
            try:
                number, raw = next(lines)
            except StopIteration:
                return
            except _GzipBroken as exc:
                after, why = exc.args
                reject(name, after + 1, f"gzip file is corrupt or truncated after line {after} ({why}); "
                                              f"the rest of the file is not loaded", None)
                return
            stats.lines += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                reject(name, number, "line is not valid UTF-8", redact(raw.decode("utf-8", "replace")))
                continue
            if number == 1:
                text = text.lstrip("\ufeff")
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                message = _JSON.decode(text)
            except ValueError:  # JSONDecodeError, or a number too large
                reject(name, number, f"invalid JSON: {_json_error(text)}", redact(text))
                continue
            yield number, message
