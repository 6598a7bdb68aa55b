"""Retention (``retention.days``): what each run removes, and the dates it can no longer write.

``apply_retention(con, days)`` computes the cutoff (the latest evaluated business date minus
``days``; it never moves back), runs ``sql/retention/apply_retention.sql`` statement by
statement in the caller's transaction, and records the rows each statement removed in
``recon.retention_log``. ``assert_writable(con, d)`` refuses a business date before the latest
cutoff: its raw data is gone, so a rerun would silently give other answers.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, Iterator

import duckdb

from pipelines.errors import InputMissing, SourceUnavailable
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
_WORKING_RE = re.compile(r"\b(" + "|".join(re.escape(t) for t in WORKING_TABLES) + r")\b")
RUN_STALE_AFTER = timedelta(days=1)  # a run killed midway protects its date no longer than this


class WorkingRowsMissing(InputMissing):
    """A working table a builder reads holds no rows of the date (trimmed, or never built)."""


def working_cutoff(con: duckdb.DuckDBPyConnection, keep: int | None, running: date | None = None) -> date | None:
    """The oldest business date the working tables keep: the ``keep``-th newest of the evaluated
    dates (and ``running``, the date being run); None keeps every date."""
    if keep is None:
        return None
    return con.execute(
        "SELECT min(business_date) FROM (SELECT business_date FROM (SELECT business_date FROM recon.evaluated_dates "
        "UNION SELECT CAST($d AS DATE) WHERE $d IS NOT NULL) WHERE business_date IS NOT NULL "
        "ORDER BY business_date DESC LIMIT $n)", {"d": running, "n": keep}).fetchone()[0]


_UNPROTECTED = ("business_date < $cutoff AND business_date NOT IN (SELECT business_date FROM state.working_runs "
                "WHERE run_id <> $run AND started_at > $since)")


def _trim(con: duckdb.DuckDBPyConnection, table: str, cutoff: date, run_id: str) -> int:
    """Remove ``table``'s rows of dates before ``cutoff`` that no other run is building."""
    params = {"cutoff": cutoff, "run": run_id, "since": utc_now() - RUN_STALE_AFTER}
    removed = con.execute(f"DELETE FROM {table} WHERE {_UNPROTECTED}", params).fetchone()[0]
    con.execute(f"DELETE FROM state.working_builds WHERE table_name = $t AND {_UNPROTECTED}", {"t": table, **params})
    return int(removed)


def make_room(warehouse: Any, table: str, d: date, keep: int | None, run_id: str) -> int:
    """Before ``table`` is rebuilt for ``d`` by run ``run_id``: record the run as building ``d``
    (no other run trims that date's rows meanwhile), remove the table's rows of dates the working
    tables no longer keep, and checkpoint, so that the rows about to be written reuse their space
    (written in the same transaction, they would take new space and the file would hold two
    copies). Returns the rows removed."""
    if keep is None:
        return 0
    with warehouse.connection() as con:
        con.execute("INSERT INTO state.working_runs SELECT $run, $d, $now WHERE NOT EXISTS "
                    "(SELECT 1 FROM state.working_runs WHERE run_id = $run)", {"run": run_id, "d": d, "now": utc_now()})
        removed = _trim(con, table, working_cutoff(con, keep, d), run_id)
        if removed:
            try:
                con.execute("CHECKPOINT")
            except duckdb.Error:  # another transaction is open (a reader): only the space is not reused yet
                pass
    return removed


@contextmanager
def rebuilding(warehouse: Any, table: str, d: date, keep: int | None, run_id: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """The transaction in which a working table is rebuilt for ``d``, after ``make_room``, with the
    warehouse file held for both."""
    with warehouse.held():
        make_room(warehouse, table, d, keep, run_id)
        with warehouse.transaction() as con:
            yield con


def trim_working_tables(con: duckdb.DuckDBPyConnection, keep: int | None, run_id: str) -> dict[str, int]:
    """At the end of a run: the run stops building, and the working tables keep the newest ``keep``
    evaluated dates only (a run of an older date removes what it rebuilt; dates other runs are
    building stay until those runs end), so their content does not depend on the order dates ran
    in. Returns the rows removed per table."""
    # this run, a run of the same date killed before it ended (this one redid its work), and stale ones
    con.execute("DELETE FROM state.working_runs WHERE run_id = $run OR started_at <= $since OR business_date = "
                "(SELECT business_date FROM state.working_runs WHERE run_id = $run)",
                {"run": run_id, "since": utc_now() - RUN_STALE_AFTER})
    cutoff = working_cutoff(con, keep)
    if cutoff is None:
        return {}
    return {t: _trim(con, t, cutoff, run_id) for t in WORKING_TABLES}


def record_build(con: duckdb.DuckDBPyConnection, table: str, d: date) -> None:
    """``table`` now holds the rows of ``d``."""
    con.execute("DELETE FROM state.working_builds WHERE table_name = $t AND business_date = $d", {"t": table, "d": d})
    con.execute("INSERT INTO state.working_builds VALUES ($t, $d, $now)", {"t": table, "d": d, "now": utc_now()})


def require_working_rows(con: duckdb.DuckDBPyConnection, d: date, sql: str | None = None) -> None:
    """Refuse to build from working tables (those ``sql`` names; all of them without ``sql``)
    that do not hold ``d``: a step run alone, or re-executed, after another run trimmed the date
    would read empty tables and report nothing. A table with no build recorded for any date (a
    warehouse from before they were recorded, a test building one table alone) is not refused."""
    tables = sorted(set(_WORKING_RE.findall(sql))) if sql is not None else list(WORKING_TABLES)
    if not tables:
        return
    rows = con.execute("SELECT table_name, bool_or(business_date = $d) FROM state.working_builds "
                       "WHERE list_contains($t, table_name) GROUP BY table_name", {"d": d, "t": tables}).fetchall()
    missing = sorted(t for t, built in rows if not built)  # a table never recorded at all is not refused
    if missing:
        raise WorkingRowsMissing(f"{', '.join(missing)} hold(s) no rows of {d} (trimmed by retention.working_dates, "
                                 f"or not built): run the whole date again (recon run --date {d})")
