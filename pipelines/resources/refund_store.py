"""The refund ledger in the warehouse, kept once and updated by what changed in the archive.

Tables (``sql/schema/create_raw_refund_ledger_tables.sql``): the manifest
``state.refund_ledger_files``; per file, its deliveries (``state.refund_ledger_deliveries``) and its
rejected lines (``state.refund_ledger_file_rejects``); the content of every distinct version some
file delivers (``state.refund_versions``); and, resolved across files, the versions in force
(``raw.refund_lines``, what ``sql/core/build_refund_lines.sql`` reads for every business date)
and the conflicting redeliveries (``state.refund_ledger_conflicts``).

``update(con, ...)``, in the caller's transaction: the yield of every file read is replaced,
the yield of every removed file is dropped, touched files get their new size and mtime, new
versions are added once (by ``version_key``), and only the credit notes those files name (before
or after) are resolved again (``sql/sources/resolve_refund_ledger.sql``): the same rule as the
whole-archive reader, so the tables equal what reading everything would give. An empty manifest
(the first run, or a warehouse of the per-date layout) starts from empty tables.

``current_rejects(con)``: every reject of the archive as it is (file rejects and conflicts), in
relative path and line order: each business date's ``recon.rejects`` partition lists them all.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

import duckdb
import polars as pl

from pipelines.resources.refund_files import FileState
from pipelines.resources.refund_ledger import REJECTS_SCHEMA, FileRead
from pipelines.resources.refund_versions import VERSIONS_SCHEMA
from pipelines.resources.warehouse import insert_rows, run_sql_file

MANIFEST = "state.refund_ledger_files"
PER_FILE = ("state.refund_ledger_deliveries", "state.refund_ledger_file_rejects")
DERIVED = ("state.refund_versions", "raw.refund_lines", "state.refund_ledger_conflicts")
_REJECT_COLUMNS = ", ".join(REJECTS_SCHEMA)


@dataclass
class Update:
    versions_added: int = 0
    versions_removed: int = 0
    credit_notes_resolved: int = 0


def manifest(con: duckdb.DuckDBPyConnection) -> dict[str, FileState]:
    rows = con.execute(f"SELECT path, size, mtime_ns, sha256 FROM {MANIFEST}").fetchall()
    return {r[0]: FileState(*r) for r in rows}


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    insert_rows(con, table, frame)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def update(con: duckdb.DuckDBPyConnection, business_date: date, read_at: datetime,
           reads: Sequence[tuple[FileState, FileRead]], touched: Sequence[FileState],
           removed: Sequence[str]) -> Update:
    """Store what the files read yield, forget the removed ones, resolve the credit notes they
    name. Returns what changed."""
    out = Update()
    if _count(con, MANIFEST) == 0:  # nothing is known to come from any file: start clean
        for table in (*PER_FILE, *DERIVED):
            con.execute(f"DELETE FROM {table}")
    gone = [state.path for state, _ in reads] + list(removed)
    con.execute("CREATE OR REPLACE TEMP TABLE _ledger_notes (credit_note_number VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _ledger_paths (path VARCHAR)")
    try:
        if gone:
            _insert(con, "_ledger_paths", pl.DataFrame({"path": gone}, schema={"path": pl.Utf8}))
            con.execute("INSERT INTO _ledger_notes SELECT DISTINCT credit_note_number FROM state.refund_ledger_deliveries "
                        "WHERE path IN (SELECT path FROM _ledger_paths)")
            for table in (*PER_FILE, MANIFEST):
                con.execute(f"DELETE FROM {table} WHERE path IN (SELECT path FROM _ledger_paths)")
        if reads:
            deliveries = pl.concat([r.deliveries for _, r in reads])
            _insert(con, "state.refund_ledger_deliveries", deliveries)
            _insert(con, "state.refund_ledger_file_rejects", pl.concat([r.rejects for _, r in reads]))
            _insert(con, MANIFEST, pl.DataFrame([
                {"path": s.path, "size": s.size, "mtime_ns": s.mtime_ns, "sha256": s.sha256,
                 "lines": r.stats.lines, "messages": r.stats.messages, "refund_messages": r.stats.refund_messages,
                 "ignored_other_methods": r.stats.ignored_other_methods, "read_on": business_date,
                 "read_at": read_at} for s, r in reads]))
            _insert(con, "_ledger_notes", deliveries.select("credit_note_number").unique())
            versions = pl.concat([r.versions for _, r in reads]).unique(
                subset=["version_key", "order_line_reference"], keep="first", maintain_order=True)
            before = _distinct_versions(con)
            con.register("_ledger_versions", versions.select(list(VERSIONS_SCHEMA)).to_arrow())
            try:
                con.execute("INSERT INTO state.refund_versions SELECT * FROM _ledger_versions n "
                            "WHERE n.version_key NOT IN (SELECT version_key FROM state.refund_versions)")
            finally:
                con.unregister("_ledger_versions")
            out.versions_added = _distinct_versions(con) - before
        for state in touched:
            con.execute(f"UPDATE {MANIFEST} SET size = $size, mtime_ns = $mtime WHERE path = $path",
                        {"size": state.size, "mtime": state.mtime_ns, "path": state.path})
        notes = con.execute("SELECT count(DISTINCT credit_note_number) FROM _ledger_notes").fetchone()[0]
        out.credit_notes_resolved = notes
        if notes:
            versions_before = _distinct_versions(con)
            run_sql_file(con, "sources/resolve_refund_ledger.sql")
            out.versions_removed = versions_before - _distinct_versions(con)
    finally:
        con.execute("DROP TABLE IF EXISTS _ledger_notes")
        con.execute("DROP TABLE IF EXISTS _ledger_paths")
    return out


def _distinct_versions(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(DISTINCT version_key) FROM state.refund_versions").fetchone()[0]


def current_rejects(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every reject of the archive as stored: file rejects and conflicting redeliveries, in
    relative path and line order (``REJECTS_SCHEMA``)."""
    frame = con.execute(
        f"SELECT {_REJECT_COLUMNS} FROM (SELECT path, line, {_REJECT_COLUMNS} FROM state.refund_ledger_file_rejects "
        f"UNION ALL SELECT path, line, {_REJECT_COLUMNS} FROM state.refund_ledger_conflicts) ORDER BY path, line").pl()
    return frame.cast(REJECTS_SCHEMA) if frame.height else pl.DataFrame(schema=REJECTS_SCHEMA)


def totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The archive as stored: files, refund lines, credit notes and versions in force,
    identical redeliveries collapsed into them."""
    files, lines = con.execute(f"SELECT count(*), coalesce(sum(lines), 0) FROM {MANIFEST}").fetchone()
    rows, notes, versions, collapsed = con.execute(
        "SELECT count(*), count(DISTINCT credit_note_number), count(DISTINCT version_key), "
        "coalesce(sum(delivery_count - 1) FILTER (WHERE first_row), 0) FROM ("
        "  SELECT credit_note_number, version_key, delivery_count,"
        "         row_number() OVER (PARTITION BY version_key) = 1 AS first_row FROM raw.refund_lines)").fetchone()
    return {"files": files, "archive_lines": int(lines), "rows": rows, "credit_notes": notes,
            "versions": versions, "duplicates_collapsed": int(collapsed)}
