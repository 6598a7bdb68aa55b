"""Links each payment-provider refund to at most one credit note (reconciliation.md "Credit notes
against payment-provider refunds"), into ``recon.payment_matches``.

Provider refunds are taken in ``created`` order (then id); the first method that finds a note wins:

1. **reference**: ``metadata.credit_note_number`` names a credit note in force at T;
2. **order + amount**: a money-out note of the refund's ``metadata.order_id`` in the same currency whose amount
   *not yet covered* (its amount minus the ``succeeded`` refunds already linked to it) is within
   ``amount_tolerance`` of the refund's amount, with ``created`` within ``payment_match_days`` of
   the note's status date (both bounds inclusive). Of several such notes, the earliest released.

Only ``succeeded`` refunds cover a note; a failed or canceled attempt is linked (so that
``CREDIT_NOTE_NOT_PAID`` can say ``payment_failed``) but leaves the note uncovered for the retry.

Why Python and not one SQL file: "not yet covered" is state that each link changes for the next
refund (a retry after a failed attempt, the second half of a split payout), i.e. a fold over the
refunds in order. Set-based SQL would need a recursive CTE carrying a map of covered amounts; this
loop over rows DuckDB sorted is shorter and plainly the spec's wording. Money stays Decimal.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import duckdb
import polars as pl

from pipelines.config import ReconConfig
from pipelines.resources.warehouse import insert_rows
from pipelines.retention import record_build, require_working_rows

SCHEMA = {"business_date": pl.Date, "refund_id": pl.Utf8, "credit_note_number": pl.Utf8, "method": pl.Utf8}


def match_payments(con: duckdb.DuckDBPyConnection, d: date, cfg: ReconConfig) -> dict[str, int]:
    """Rebuild recon.payment_matches for date d; returns the links per method."""
    require_working_rows(con, d, "core.credit_notes core.provider_refunds")
    tolerance = cfg.amount_tolerance
    window = timedelta(days=int(cfg.thresholds["payment_match_days"]))
    notes = con.execute(
        "SELECT credit_note_number, order_reference, currency, amount, status_date, is_money_out "
        "FROM core.credit_notes WHERE business_date = $d ORDER BY status_date, credit_note_number", {"d": d}).fetchall()
    known = {n[0] for n in notes}
    by_order: dict[tuple, list[tuple]] = defaultdict(list)
    for note in notes:  # a note that owes nothing (not released) is no candidate for an amount
        if note[1] is not None and note[2] is not None and note[5]:
            by_order[(note[1], note[2])].append(note[:5])
    covered: dict[str, Decimal] = defaultdict(Decimal)
    links = []
    refunds = con.execute(
        "SELECT refund_id, amount, currency, created, status, order_reference, credit_note_number "
        "FROM core.provider_refunds WHERE business_date = $d ORDER BY created, refund_id", {"d": d}).fetchall()
    for refund_id, amount, currency, created, status, order, number in refunds:
        linked, method = None, None
        if number is not None and number in known:
            linked, method = number, "reference"
        elif order is not None:
            for cn, _, _, note_amount, status_date in by_order.get((order, currency), ()):
                if status_date is None or abs(created - status_date) > window:
                    continue
                if abs(amount - ((note_amount or Decimal(0)) - covered[cn])) <= tolerance:
                    linked, method = cn, "order_amount"
                    break
        if linked is None:
            continue
        if status == "succeeded":
            covered[linked] += amount
        links.append({"business_date": d, "refund_id": refund_id, "credit_note_number": linked, "method": method})
    con.execute("DELETE FROM recon.payment_matches WHERE business_date = $d", {"d": d})
    insert_rows(con, "recon.payment_matches", pl.DataFrame(links, schema=SCHEMA))
    record_build(con, "recon.payment_matches", d)
    counts: dict[str, int] = defaultdict(int)
    for link in links:
        counts[link["method"]] += 1
    return {"refunds": len(refunds), "unlinked": len(refunds) - len(links), **counts}
