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
