"""Retention (``retention.days``): what each run removes, and the dates it can no longer write.

``apply_retention(con, days)`` computes the cutoff (the latest evaluated business date minus
``days``; it never moves back), runs ``sql/retention/apply_retention.sql`` statement by
statement in the caller's transaction, and records the rows each statement removed in
``recon.retention_log``. ``assert_writable(con, d)`` refuses a business date before the latest
cutoff: its raw data is gone, so a rerun would silently give other answers.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import duckdb

from pipelines.errors import SourceUnavailable
from pipelines.partitions import as_of, utc_now
from pipelines.settings import SQL_DIR

RETENTION_SQL = SQL_DIR / "retention" / "apply_retention.sql"
_TABLE_RE = re.compile(r"DELETE\s+FROM\s+([a-z_]+\.[a-z_]+)", re.IGNORECASE)


class RetiredDate(SourceUnavailable):
    """A business date before the retention cutoff: its data was removed."""


def latest_cutoff(con: duckdb.DuckDBPyConnection) -> date | None:
    return con.execute("SELECT max(cutoff) FROM recon.retention_log").fetchone()[0]


def assert_writable(con: duckdb.DuckDBPyConnection, business_date: date) -> None:
    cutoff = latest_cutoff(con)
    if cutoff is not None and business_date < cutoff:
        raise RetiredDate(f"business date {business_date} is before the retention cutoff {cutoff} "
                          "(retention.days): its raw data was removed, so it cannot be run again")


def apply_retention(con: duckdb.DuckDBPyConnection, business_date: date, days: int | None) -> list[dict[str, Any]]:
    """Removes what the retention allows; returns one row per table (rows removed), [] when off."""
    if days is None:
        return []
    latest = con.execute("SELECT max(business_date) FROM recon.evaluated_dates").fetchone()[0]
    if latest is None:
        return []
    cutoff = max(latest - timedelta(days=days), latest_cutoff(con) or date.min)
    params = {"cutoff": cutoff, "cutoff_as_of": as_of(cutoff)}
    applied_at = utc_now()
    log = []
    for statement in con.extract_statements(RETENTION_SQL.read_text()):
        table = _TABLE_RE.search(statement.query).group(1)
        names = set(statement.named_parameters)
        deleted = con.execute(statement, {n: params[n] for n in names}).fetchone()[0]
        log.append({"business_date": business_date, "cutoff": cutoff, "table_name": table,
                    "rows_deleted": int(deleted), "applied_at": applied_at})
    con.executemany("INSERT INTO recon.retention_log VALUES ($business_date, $cutoff, $table_name, "
                    "$rows_deleted, $applied_at)", log)
    return log


# --------------------------------------------------------------------------- working tables

# Rebuilt from the raw layers by every run and read only at their own business date.
WORKING_TABLES = (
    "core.order_lines", "core.rma_lines", "core.wms_returns", "core.wms_return_units", "core.refund_lines",
    "core.credit_notes", "core.provider_refunds", "core.stock_adjustment_lines", "core.stock_levels",
    "core.data_issues", "recon.rma_matches", "recon.order_line_positions", "recon.payment_matches",
)


def working_cutoff(con: duckdb.DuckDBPyConnection, keep: int | None, running: date | None = None) -> date | None:
    """The oldest business date the working tables keep: the ``keep``-th newest of the evaluated
    dates (and ``running``, the date being run); None keeps every date."""
    if keep is None:
        return None
    return con.execute(
        "SELECT min(business_date) FROM (SELECT business_date FROM (SELECT business_date FROM recon.evaluated_dates "
        "UNION SELECT CAST($d AS DATE) WHERE $d IS NOT NULL) WHERE business_date IS NOT NULL "
        "ORDER BY business_date DESC LIMIT $n)", {"d": running, "n": keep}).fetchone()[0]


def make_room(warehouse: Any, table: str, d: date, keep: int | None) -> int:
    """Before ``table`` is rebuilt for ``d``: remove its rows of dates the working tables no longer
    keep, and checkpoint, so that the rows about to be written reuse their space (written in the
    same transaction, they would take new space and the file would hold two copies). Returns the
    rows removed."""
    with warehouse.connection() as con:
        cutoff = working_cutoff(con, keep, d)
        if cutoff is None:
            return 0
        removed = con.execute(f"DELETE FROM {table} WHERE business_date < $c", {"c": cutoff}).fetchone()[0]
        if removed:
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error:  # another transaction is open (a reader): only the space is not reused yet
                pass
    return int(removed)


def trim_working_tables(con: duckdb.DuckDBPyConnection, keep: int | None) -> dict[str, int]:
    """At the end of a run: the working tables keep the newest ``keep`` evaluated dates only (a run
    of an older date removes what it rebuilt), so their content does not depend on the order dates
    ran in. Returns the rows removed per table."""
    cutoff = working_cutoff(con, keep)
    if cutoff is None:
        return {}
    return {t: int(con.execute(f"DELETE FROM {t} WHERE business_date < $c", {"c": cutoff}).fetchone()[0])
            for t in WORKING_TABLES}
