"""What finance decided about each discrepancy (reconciliation.md "Review: what finance decided").

A decision is a change of ``review_state``, ``assignee`` or a note. Every change is appended to
``recon.review_events``; the current ``review_state`` / ``assignee`` / ``last_note`` of
``recon.discrepancies`` are derived from those events by ``sql/recon/merge_into_discrepancy_reviews.sql``
(also after each run's merge), so runs, reruns and backfills never touch a decision.

``apply_changes`` is the one writer: the CLI's ``recon review set`` and the workbook import
(``pipelines/review_import.py``) both call it inside one transaction.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import polars as pl

from pipelines.resources.warehouse import run_sql_file
from pipelines.settings import SQL_DIR

STATES = ("NEW", "INVESTIGATING", "ACCEPTED", "RECOVERED", "WRITTEN_OFF", "FALSE_POSITIVE")
# Out of the "to do" list: known and tolerated, or settled.
DECIDED = ("ACCEPTED", "RECOVERED", "WRITTEN_OFF", "FALSE_POSITIVE")
FIELDS = ("review_state", "assignee", "note")
UNSET = object()  # "leave this field as it is"


class ReviewError(ValueError):
    """A review command or file that cannot be applied; the message names the id or the row."""


@dataclass(frozen=True)
class Change:
    """One requested decision on one discrepancy; UNSET fields are left as they are."""
    discrepancy_id: str
    review_state: object = UNSET
    assignee: object = UNSET       # None: unassign
    note: object = UNSET


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name (a container without passwd entry)
        return "unknown"


def normalise_state(value: str) -> str:
    state = value.strip().upper().replace(" ", "_").replace("-", "_")
    if state not in STATES:
        raise ReviewError(f"unknown review state {value!r} (one of {', '.join(STATES)})")
    return state


def current(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, dict]:
    """The current review columns and amount of the given ids (unknown ids are absent)."""
    rows = con.execute(
        "SELECT discrepancy_id, review_state, assignee, last_note, amount_at_risk, currency, business_date "
        "FROM recon.discrepancies WHERE discrepancy_id IN (SELECT unnest($ids))", {"ids": ids}).fetchall()
    return {r[0]: {"review_state": r[1] or "NEW", "assignee": r[2], "note": r[3], "amount_at_risk": r[4],
                   "currency": r[5], "business_date": r[6]} for r in rows}


def apply_changes(con: duckdb.DuckDBPyConnection, changes: list[Change], *, actor: str, source: str,
                  at: datetime | None = None) -> list[tuple]:
    """Append an event for every field that differs from the current value and refresh the review
    columns; returns the events written as (discrepancy_id, field, old, new). The caller owns the
    transaction. Unknown ids raise ReviewError before anything is written."""
    at = at or datetime.now(timezone.utc).replace(tzinfo=None)
    now = current(con, [c.discrepancy_id for c in changes])
    unknown = [c.discrepancy_id for c in changes if c.discrepancy_id not in now]
    if unknown:
        raise ReviewError(f"unknown discrepancy id {unknown[0]}" + (f" (and {len(unknown) - 1} more)"
                                                                    if len(unknown) > 1 else ""))
    next_id = con.execute("SELECT coalesce(max(event_id), 0) + 1 FROM recon.review_events").fetchone()[0]
    events, written = [], []
    for change in changes:
        state = now[change.discrepancy_id]
        note = None if change.note is UNSET or not str(change.note or "").strip() else str(change.note).strip()
        per_change = []
        for field in ("review_state", "assignee"):
            value = getattr(change, field)
            if value is not UNSET and value != state[field]:
                per_change.append((field, state[field], value))
        if note is not None and not per_change and note != state["note"]:
            per_change.append(("note", state["note"], note))
        for field, old, new in per_change:
            events.append((next_id, change.discrepancy_id, at, actor, field, old, new, note, source,
                           state["amount_at_risk"], state["currency"], state["business_date"]))
            written.append((change.discrepancy_id, field, old, new))
            next_id += 1
        if per_change:  # a later change of the same id in this batch sees this one
            state.update({f: n for f, _, n in per_change})
    if events:
        con.executemany('INSERT INTO recon.review_events (event_id, discrepancy_id, "at", actor, field, old, new, '
                        'note, source, amount_at_risk, currency, business_date) '
                        'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', events)
        refresh(con)
    return written


def refresh(con: duckdb.DuckDBPyConnection) -> None:
    run_sql_file(con, SQL_DIR / "recon" / "merge_into_discrepancy_reviews.sql")


QUEUE_SQL = """
SELECT discrepancy_id, rule, severity, business_date - first_detected_on AS age_days, amount_at_risk, currency,
       review_state, assignee, last_note
FROM recon.discrepancies
WHERE status = 'OPEN'
  AND ($rule IS NULL OR rule = $rule)
  AND ($assignee IS NULL OR assignee = $assignee)
  AND (CASE WHEN $state IS NULL THEN review_state NOT IN (SELECT unnest($decided)) ELSE review_state = $state END)
ORDER BY CASE severity WHEN 'HIGH' THEN 0 WHEN 'MEDIUM' THEN 1 ELSE 2 END, amount_at_risk DESC NULLS LAST,
         discrepancy_id
"""


def queue(con: duckdb.DuckDBPyConnection, *, rule: str | None = None, state: str | None = None,
          assignee: str | None = None) -> pl.DataFrame:
    """Open discrepancies to review: without --state, those still to do (NEW, INVESTIGATING)."""
    return con.execute(QUEUE_SQL, {"rule": rule, "state": state, "assignee": assignee,
                                   "decided": list(DECIDED)}).pl()


def decided_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return dict(con.execute("SELECT review_state, count(*) FROM recon.discrepancies WHERE status = 'OPEN' "
                            "AND review_state IN (SELECT unnest($d)) GROUP BY 1 ORDER BY 1",
                            {"d": list(DECIDED)}).fetchall())
