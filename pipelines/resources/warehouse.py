"""The DuckDB warehouse: one file, schemas raw / core / recon, tables created from sql/schema/.

Every write goes through ``warehouse.transaction()`` so a run's writes for one
asset are all-or-nothing, and partitions are replaced (delete + insert of one
business date) inside that transaction: a rerun never duplicates rows.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
import duckdb
import polars as pl
from pydantic import PrivateAttr

from pipelines.settings import SQL_DIR

SCHEMA_FILES = sorted((SQL_DIR / "schema").glob("create_*.sql"))


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> None:
    """Run every statement of ``sql`` (split by DuckDB's own parser); each gets only the
    ``$name`` parameters it uses."""
    params = params or {}
    for statement in con.extract_statements(sql):
        names = set(statement.named_parameters)
        missing = names - set(params)
        if missing:
            raise KeyError(f"SQL parameter(s) not given: {', '.join(sorted(missing))}")
        con.execute(statement, {n: params[n] for n in names} if names else None)


def run_sql_file(con: duckdb.DuckDBPyConnection, path: str | Path, params: dict[str, Any] | None = None) -> None:
    path = Path(path)
    if not path.is_absolute():
        path = SQL_DIR / path
    run_sql(con, path.read_text(), params)


def _schema_version() -> str:
    import hashlib
    digest = hashlib.sha256()
    for path in SCHEMA_FILES:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


SCHEMA_VERSION = _schema_version()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table (sql/schema/create_*.sql). A warehouse that already has this version of
    the DDL (a hash of the files, kept in main.schema_version) is left alone: one query instead
    of re-running some fifty statements on every connection."""
    try:
        current = con.execute("SELECT version FROM main.schema_version").fetchone()
    except duckdb.CatalogException:
        current = None
    if current is not None and current[0] == SCHEMA_VERSION:
        return
    for path in SCHEMA_FILES:
        run_sql(con, path.read_text())
    con.execute("CREATE OR REPLACE TABLE main.schema_version AS SELECT $v AS version", {"v": SCHEMA_VERSION})


def connect(path: str | Path, *, read_only: bool = False, lock_timeout_s: float = 600.0) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, waiting while another process holds DuckDB's write lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    delay = 0.2
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
    if not read_only:
        ensure_schema(con)
    return con


def replace_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame,
                 where: dict[str, Any]) -> int:
    """Delete the rows of ``table`` matching ``where`` and insert ``frame`` (columns by name)."""
    clause = " AND ".join(f"{col} = ${col}" for col in where)
    con.execute(f"DELETE FROM {table} WHERE {clause}", where)
    return insert_rows(con, table, frame)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> int:
    """Append ``frame`` to ``table`` (columns by name); returns the rows inserted."""
    if frame.height == 0:
        return 0
    columns = ", ".join(frame.columns)
    con.register("_incoming", frame.to_arrow())
    try:
        con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _incoming")
    finally:
        con.unregister("_incoming")
    return frame.height


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file (``RECON_WAREHOUSE``).

    ``held()`` keeps the file open for one step (an asset or a check step): every ``connection()``
    inside is a cursor on the open file. Opening it costs some 15 ms (and closing the last handle
    a checkpoint), which a step's several connections would otherwise pay each. Only for a step:
    the file's lock is held no longer than the step holds the warehouse pool's slot, so other
    runs and ``recon review`` wait for a step, never for a whole run.
    """

    path: str
    _held: duckdb.DuckDBPyConnection | None = PrivateAttr(default=None)

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._held is not None:  # nested: the outer one closes it
            yield
            return
        self._held = connect(self.path)
        try:
            yield
        finally:
            held, self._held = self._held, None
            held.close()

    @contextmanager
    def connection(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own (its own transaction): a cursor on the held file inside
        ``held()`` (writable: the step holding the file is the writer), else the file opened
        (``read_only`` as asked)."""
        con = self._held.cursor() if self._held is not None else connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All writes inside commit together or not at all."""
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def replace_partition(self, con: duckdb.DuckDBPyConnection, table: str, business_date: date,
                          frame: pl.DataFrame, **where: Any) -> int:
        """Replace one business date's rows of ``table`` (a date before the retention cutoff is refused)."""
        from pipelines.retention import assert_writable

        assert_writable(con, business_date)
        return replace_rows(con, table, frame, {"business_date": business_date, **where})

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        with self.connection() as con:
            return con.execute(sql, params).pl()
