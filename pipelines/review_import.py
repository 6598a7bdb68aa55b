"""``recon review import FILE.xlsx``: the review columns a person filled in an exported workbook.

A person's edit is a review cell (``Review state``, ``Assignee``, ``Note``) that differs from what
the export wrote there (the workbook's very hidden ``_exported`` sheet), so a cell left as it was
never overrides a decision made since the export. An edit is applied only when it also differs
from the current value (importing the same file twice changes nothing). Every other column is
protected: a change there is ignored and reported. Unknown ids and unknown states are rejected
with the row number; the valid rows are applied in the caller's transaction, with the file's
name and sha256 as the events' source.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

from pipelines.review import UNSET, Change, ReviewError, apply_changes, current, normalise_state
from pipelines.workbook import EXPORTED_SHEET, OPEN_SHEET, REVIEW_HEADERS

ID_HEADER = "Discrepancy ID"


@dataclass
class ImportReport:
    source: str
    applied: list[tuple] = field(default_factory=list)     # (id, field, old, new)
    rejected: list[str] = field(default_factory=list)      # "row N: reason"
    ignored: list[str] = field(default_factory=list)       # "row N: protected column X changed (ignored)"


def _norm(value) -> str:
    """A cell's value as comparable text (openpyxl gives str, int, float, datetime or None)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        try:
            return str(Decimal(repr(value)).normalize())
        except InvalidOperation:
            return repr(value)
    if isinstance(value, int):
        return str(value)
    return str(value).strip()


def _amount(value) -> Decimal | None:
    """A money cell as the register's DECIMAL(18,2) (Excel keeps doubles)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return None


def _money(amount, currency) -> str:
    return f"{amount} {_norm(currency)}".strip()


def _rows(sheet) -> tuple[list[str], list[tuple[int, list]]]:
    rows = sheet.iter_rows(values_only=True)
    try:
        header = [_norm(h) for h in next(rows)]
    except StopIteration:
        return [], []
    return header, [(n, list(r)) for n, r in enumerate(rows, start=2) if any(v not in (None, "") for v in r)]


def import_workbook(con: duckdb.DuckDBPyConnection, path: Path, *, actor: str) -> ImportReport:
    import openpyxl

    data = path.read_bytes()
    report = ImportReport(source=f"{path.name} sha256:{hashlib.sha256(data).hexdigest()}")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=False)  # a formula is read as its text, never run
    except Exception as exc:  # noqa: BLE001 - any unreadable file: one line
        raise ReviewError(f"{path.name} is not a workbook this export wrote ({type(exc).__name__})") from None
    try:
        if OPEN_SHEET not in book.sheetnames or EXPORTED_SHEET not in book.sheetnames:
            raise ReviewError(f"{path.name} has no sheet {OPEN_SHEET!r} (or its export record): "
                              "import a workbook `recon run` exported")
        header, rows = _rows(book[OPEN_SHEET])
        exported_header, exported_rows = _rows(book[EXPORTED_SHEET])
    finally:
        book.close()
    missing = [h for h in (ID_HEADER, *REVIEW_HEADERS) if h not in header]
    if missing:
        raise ReviewError(f"{path.name}: sheet {OPEN_SHEET!r} has no column {missing[0]!r}")
    exported = {}
    for _, values in exported_rows:
        record = dict(zip(exported_header, values))
        exported[_norm(record.get(ID_HEADER))] = record
    known = current(con, [i for i in (_norm(dict(zip(header, v)).get(ID_HEADER)) for _, v in rows) if i])
    changes, seen = [], set()
    for row_no, values in rows:
        record = dict(zip(header, values))
        discrepancy_id = _norm(record.get(ID_HEADER))
        if not discrepancy_id:
            report.rejected.append(f"row {row_no}: no discrepancy id")
            continue
        if discrepancy_id not in known or discrepancy_id not in exported:
            report.rejected.append(f"row {row_no}: unknown discrepancy id {discrepancy_id!r}")
            continue
        if discrepancy_id in seen:
            report.rejected.append(f"row {row_no}: discrepancy {discrepancy_id} appears twice; the first row applies")
            continue
        seen.add(discrepancy_id)
        original = exported[discrepancy_id]
        protected = [h for h in header if h and h not in REVIEW_HEADERS and h in original
                     and _norm(record.get(h)) != _norm(original.get(h))]
        if protected:
            report.ignored.append(f"row {row_no}: protected column{'s' if len(protected) > 1 else ''} "
                                  f"{', '.join(repr(h) for h in protected)} changed on {discrepancy_id} (ignored)")
        edits = {REVIEW_HEADERS[h]: _norm(record.get(h)) for h in REVIEW_HEADERS
                 if _norm(record.get(h)) != _norm(original.get(h))}
        if not edits:
            continue
        seen_amount, now_amount = _amount(original.get("Amount at risk")), known[discrepancy_id]["amount_at_risk"]
        if seen_amount != now_amount or _norm(original.get("Currency")) != _norm(known[discrepancy_id]["currency"]):
            report.rejected.append(
                f"row {row_no}: the amount of {discrepancy_id} changed since this workbook was exported "
                f"({_money(seen_amount, original.get('Currency'))} -> "
                f"{_money(now_amount, known[discrepancy_id]['currency'])}): review it in the latest workbook")
            continue
        if "note" in edits and not edits["note"]:
            report.ignored.append(f"row {row_no}: the note of {discrepancy_id} was cleared (notes are history: "
                                  "ignored)")
            del edits["note"]
            if not edits:
                continue
        state = UNSET
        if "review_state" in edits:
            if not edits["review_state"]:
                report.rejected.append(f"row {row_no}: review state emptied on {discrepancy_id} (keep a state)")
                continue
            try:
                state = normalise_state(edits["review_state"])
            except ReviewError as exc:
                report.rejected.append(f"row {row_no}: {exc}")
                continue
        assignee = (edits["assignee"] or None) if "assignee" in edits else UNSET
        note = edits["note"] if edits.get("note") else UNSET
        changes.append(Change(discrepancy_id, review_state=state, assignee=assignee, note=note))
    if changes:
        report.applied = apply_changes(con, changes, actor=actor, source=report.source)
    return report
