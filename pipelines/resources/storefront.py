"""Read-only connector to the OpenCart database (sources.md section 2), through SQLAlchemy.

``StorefrontResource.read_snapshot()`` reads the return history, returns (RMAs), order lines,
orders and products, in that order (children before parents: OpenCart 3 creates MyISAM tables,
which have no transaction, so a row written during the read must never appear without its
parent; the parent is read afterwards), in one connection (on InnoDB also one transaction),
with plain, portable SQL (SQLite for the demo and tests, ``mysql+pymysql://`` in production),
and returns polars frames whose columns are exactly those of
``sql/schema/create_raw_storefront_tables.sql`` minus ``business_date``.

- Status, reason and action names are looked up in the language tables (``language_id`` 1)
  in SQL. They are kept as read: mapping them to the canonical lifecycle (and calling an
  unmapped or missing name unknown) is the SQL's and the data-quality checks' job, so an RMA
  or history row with an unknown status or action name still loads.
- Personal data (names, email, telephone) and free-text comments are never selected; the
  only exception is ``oc_return_history.comment``, read row by row in Python just to extract
  the tracking number with the configured pattern: only the number (group 1) is kept.
- Every row is validated once, as it is read, by its table's model
  (``pipelines.records.storefront``: value types, zero dates, the shop's time zone
  ``STOREFRONT_TIMEZONE``, per-record rules); the rules across records (a parent exists, an
  RMA's model matches a line of its order, duplicate keys) are
  ``pipelines.resources.storefront_integrity``'s, which also builds the rejects: a bad row is
  rejected with its reason, its grains and an allow-listed payload, and the others still load.
- The connection URL may hold a password: it never appears in a message, log or frame
  (``safe_url`` hides it); a connection failure raises ``SourceUnavailable``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pipelines.errors import SourceUnavailable
from pipelines.records.base import Record, validate
from pipelines.records.storefront import Order, OrderLine, Product, Return, ReturnHistory
from pipelines.records.values import read_text
from pipelines.resources.secrets import reveal
from pipelines.resources.storefront_integrity import (  # noqa: F401 - the rest re-exported for importers
    MODELS, Row, check_snapshot, GRAIN_COLUMNS, REJECTS_SCHEMA, SOURCE, model_key,
)

LANGUAGE_ID = 1
BATCH_ROWS = 50_000
_PREFIX_RE = re.compile(r"[A-Za-z0-9_]*")

# Column types of the raw tables (business_date excluded).
ORDERS_SCHEMA: dict[str, pl.DataType] = {
    "order_id": pl.Int64, "store_id": pl.Int32, "customer_id": pl.Int64, "total": pl.Decimal(15, 4),
    "order_status_id": pl.Int32, "order_status_name": pl.Utf8, "currency_code": pl.Utf8,
    "currency_value": pl.Decimal(15, 8), "date_added": pl.Datetime("us"), "date_modified": pl.Datetime("us"),
}
ORDER_LINES_SCHEMA: dict[str, pl.DataType] = {
    "order_product_id": pl.Int64, "order_id": pl.Int64, "product_id": pl.Int64, "name": pl.Utf8,
    "model": pl.Utf8, "quantity": pl.Int32, "price": pl.Decimal(15, 4), "tax": pl.Decimal(15, 4),
    "total": pl.Decimal(15, 4),
}
PRODUCTS_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.Int64, "model": pl.Utf8, "quantity": pl.Int32, "price": pl.Decimal(15, 4),
    "subtract": pl.Int32, "status": pl.Int32, "date_modified": pl.Datetime("us"),
}
RETURNS_SCHEMA: dict[str, pl.DataType] = {
    "return_id": pl.Int64, "order_id": pl.Int64, "product_id": pl.Int64, "customer_id": pl.Int64,
    "product": pl.Utf8, "model": pl.Utf8, "quantity": pl.Int32, "opened": pl.Int32,
    "return_reason_id": pl.Int32, "return_reason_name": pl.Utf8,
    "return_action_id": pl.Int32, "return_action_name": pl.Utf8,
    "return_status_id": pl.Int32, "return_status_name": pl.Utf8,
    "date_ordered": pl.Date, "date_added": pl.Datetime("us"), "date_modified": pl.Datetime("us"),
}
RETURN_HISTORY_SCHEMA: dict[str, pl.DataType] = {
    "return_history_id": pl.Int64, "return_id": pl.Int64, "return_status_id": pl.Int32,
    "return_status_name": pl.Utf8, "notify": pl.Int32, "tracking_id": pl.Utf8, "date_added": pl.Datetime("us"),
}

# raw table name -> (snapshot attribute, schema)
RAW_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    "raw.oc_orders": ("orders", ORDERS_SCHEMA),
    "raw.oc_order_lines": ("order_lines", ORDER_LINES_SCHEMA),
    "raw.oc_products": ("products", PRODUCTS_SCHEMA),
    "raw.oc_returns": ("returns", RETURNS_SCHEMA),
    "raw.oc_return_history": ("return_history", RETURN_HISTORY_SCHEMA),
}
# the model of each table's rows (MODELS) has the table's columns as its fields, in order
assert all(tuple(MODELS[t].model_fields) == tuple(schema) for t, (_, schema) in RAW_TABLES.items())


@dataclass
class StorefrontSnapshot:
    """One read of the storefront: a frame per raw table, plus the records that failed validation."""

    orders: pl.DataFrame
    order_lines: pl.DataFrame
    products: pl.DataFrame
    returns: pl.DataFrame
    return_history: pl.DataFrame
    rejects: pl.DataFrame
    # rows read from the source, and rows rejected, per raw table name ("raw.oc_returns", ...)
    read_counts: dict[str, int] = field(default_factory=dict)
    reject_counts: dict[str, int] = field(default_factory=dict)

    def frames(self) -> dict[str, pl.DataFrame]:
        """Raw table name -> frame, in load order."""
        return {table: getattr(self, attr) for table, (attr, _) in RAW_TABLES.items()}


def load_zone(name: str) -> tzinfo:
    """The shop's IANA time zone; an unknown name is ``SourceUnavailable``."""
    text = (name or "").strip()
    if text == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(text)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError, a directory, a bad file
        raise SourceUnavailable(f"STOREFRONT_TIMEZONE {name!r} is not an IANA time zone") from None


def extract_tracking(pattern: re.Pattern[str], comment: str | None) -> str | None:
    """Group 1 of the last match of the tracking pattern in a history comment (None if none)."""
    if not comment:
        return None
    found = None
    for match in pattern.finditer(comment):
        found = match.group(1)
    return found


def frame(records: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The records (their values by field) as a frame of the raw table's schema, a column per field."""
    return pl.DataFrame({c: [r[c] for r in records] for c in schema}, schema=schema)


# --------------------------------------------------------------------------- the resource

class StorefrontResource(dg.ConfigurableResource):
    """The OpenCart database (``STOREFRONT_DB_URL``), read-only, with its table prefix."""

    db_url: str = Field(description="SQLAlchemy URL of the OpenCart database (may hold a password).",
                        repr=False)
    table_prefix: str = Field(default="oc_", description="OpenCart table prefix.")
    timezone: str = Field(default="UTC", description="IANA time zone in which OpenCart writes its datetimes "
                                                     "(its config_timezone); they are stored as UTC.")

    # -- connection

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden: the only form that may be shown anywhere."""
        try:
            return make_url(reveal(self.db_url)).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing at all
            return "<invalid database URL>"

    def _scrub(self, text: str) -> str:
        """First line of an error text, with the password (if any) masked."""
        line = (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"
        try:
            password = make_url(reveal(self.db_url)).password
        except Exception:  # noqa: BLE001
            password = None
        if password:
            for form in {str(password), quote_plus(str(password)), quote(str(password), safe="")}:
                line = line.replace(form, "***")
        return line

    def _unavailable(self, exc: BaseException, what: str = "unreachable") -> SourceUnavailable:
        reason = getattr(exc, "orig", None) or exc
        return SourceUnavailable(
            f"storefront database {what} ({self.safe_url} [password hidden]): {self._scrub(str(reason))}")

    def _engine(self) -> sa.Engine:
        if not _PREFIX_RE.fullmatch(self.table_prefix):
            raise SourceUnavailable(f"storefront table prefix {self.table_prefix!r} is not a plain identifier")
        try:
            url = make_url(reveal(self.db_url))
        except Exception:  # noqa: BLE001 - the message of a parse error may echo the URL
            raise SourceUnavailable("storefront database URL is not a valid SQLAlchemy URL") from None
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if database not in ("", ":memory:") and not database.startswith("file:") \
                    and not Path(database).is_file():
                # sqlite would silently create an empty file: a missing file is a missing source.
                raise SourceUnavailable(
                    f"storefront database unreachable ({self.safe_url} [password hidden]): file not found")
        try:
            return sa.create_engine(url, poolclass=NullPool)
        except Exception as exc:  # noqa: BLE001 - unknown dialect, missing driver
            raise self._unavailable(exc) from None

    def _table(self, engine: sa.Engine, name: str) -> str:
        return engine.dialect.identifier_preparer.quote(f"{self.table_prefix}{name}")

    # -- reading

    def read_snapshot(self, tracking_pattern: str, status_map: Mapping[str, str] | None = None,
                      action_map: Mapping[str, str] | None = None) -> StorefrontSnapshot:
        """Read and validate every storefront table the reconciliation uses.

        ``tracking_pattern`` has one capture group. ``status_map`` / ``action_map`` (the
        configured name maps) are accepted for compatibility but no longer decide anything
        here: names are loaded as read and mapped (or called unknown) by the SQL.
        """
        del status_map, action_map
        pattern = re.compile(tracking_pattern)
        zone = load_zone(self.timezone)
        engine = self._engine()
        try:
            try:
                conn = engine.connect()
            except Exception as exc:  # noqa: BLE001
                raise self._unavailable(exc) from None
            try:
                return self._read(engine, conn, pattern, {"zone": zone})
            except SourceUnavailable:
                raise
            except sa.exc.SQLAlchemyError as exc:
                raise self._unavailable(exc, "could not be read") from None
            finally:
                conn.close()
        finally:
            engine.dispose()

    def _rows(self, conn: sa.Connection, sql: str) -> Iterator[dict[str, Any]]:
        """Each row of a query as a dict of column -> value exactly as the driver hands it, fetched
        in batches of ``BATCH_ROWS`` from the driver's cursor (server-side on MySQL/MariaDB, so a
        large table is never held whole). Not through polars (``pl.read_database``): it infers a
        column's type per batch, so in a column holding 5 and 'abc' the 5 arrives as text, and a
        value's reading would depend on its neighbours; the typed models must see what the
        database holds."""
        # through the result, never its DBAPI cursor: SQLAlchemy buffers rows ahead of the cursor
        result = conn.execution_options(yield_per=BATCH_ROWS).exec_driver_sql(sql)
        try:
            columns = tuple(result.keys())
            for batch in result.partitions():
                for row in batch:
                    yield dict(zip(columns, row))  # twice as fast as dict(RowMapping)
        finally:
            result.close()

    def _validated(self, conn: sa.Connection, model: type[Record], sql: str, context: Mapping[str, Any],
                   prepare: Callable[[dict[str, Any]], None] | None = None) -> list[Row]:
        """Every row of a query, each validated on its own by the model of its table."""
        rows: list[Row] = []
        for row in self._rows(conn, sql):
            if prepare is not None:
                prepare(row)
            record, reason = validate(model, row, context)
            rows.append((row, None if record is None else vars(record), reason))  # the values only
        return rows

    def _names(self, engine: sa.Engine, table: str, id_column: str) -> str:
        """Derived table id -> name of a language table, language 1 (one name per id)."""
        return (f"(SELECT {id_column}, MIN(name) AS name FROM {self._table(engine, table)} "
                f"WHERE language_id = {LANGUAGE_ID} GROUP BY {id_column})")

    def _read(self, engine: sa.Engine, conn: sa.Connection, pattern: re.Pattern[str],
              context: Mapping[str, Any]) -> StorefrontSnapshot:
        t = lambda name: self._table(engine, name)  # noqa: E731
        read = lambda model, sql, prepare=None: self._validated(conn, model, sql, context, prepare)  # noqa: E731

        def with_tracking(row: dict[str, Any]) -> None:
            # the comment is read only to extract the tracking number, then dropped
            comment = row.pop("comment", None)
            try:
                row["tracking_id"] = extract_tracking(pattern, read_text(comment, blank_is_null=False))
            except ValueError:  # not text (bad UTF-8): no tracking number
                row["tracking_id"] = None

        # ---- 1. read, children before parents (MyISAM: no transaction). Each row is validated
        # on its own; the checks against its parent wait until the parent has been read.
        history = read(ReturnHistory, f"""
                SELECT h.return_history_id, h.return_id, h.return_status_id,
                       rs.name AS return_status_name, h.notify, h.comment, h.date_added
                FROM {t('return_history')} h
                LEFT JOIN {self._names(engine, 'return_status', 'return_status_id')} rs
                       ON rs.return_status_id = h.return_status_id
                ORDER BY h.return_history_id""", with_tracking)
        returns = read(Return, f"""
                SELECT r.return_id, r.order_id, r.product_id, r.customer_id, r.product, r.model,
                       r.quantity, r.opened,
                       r.return_reason_id, rr.name AS return_reason_name,
                       r.return_action_id, ra.name AS return_action_name,
                       r.return_status_id, rs.name AS return_status_name,
                       r.date_ordered, r.date_added, r.date_modified
                FROM {t('return')} r
                LEFT JOIN {self._names(engine, 'return_reason', 'return_reason_id')} rr
                       ON rr.return_reason_id = r.return_reason_id
                LEFT JOIN {self._names(engine, 'return_action', 'return_action_id')} ra
                       ON ra.return_action_id = r.return_action_id
                LEFT JOIN {self._names(engine, 'return_status', 'return_status_id')} rs
                       ON rs.return_status_id = r.return_status_id
                ORDER BY r.return_id""")
        lines = read(OrderLine, f"""
                SELECT order_product_id, order_id, product_id, name, model, quantity, price, tax, total
                FROM {t('order_product')}
                ORDER BY order_product_id""")
        orders = read(Order, f"""
                SELECT o.order_id, o.store_id, o.customer_id, o.total, o.order_status_id,
                       os.name AS order_status_name, o.currency_code, o.currency_value,
                       o.date_added, o.date_modified
                FROM {t('order')} o
                LEFT JOIN {self._names(engine, 'order_status', 'order_status_id')} os
                       ON os.order_status_id = o.order_status_id
                ORDER BY o.order_id""")
        products = read(Product, f"""
                SELECT product_id, model, quantity, price, subtract, status, date_modified
                FROM {t('product')}
                ORDER BY product_id""")

        # ---- 2. the rules across records, parents first
        tables, rejects = check_snapshot(orders, lines, products, returns, history)
        frames = {RAW_TABLES[name][0]: frame(table.loaded, RAW_TABLES[name][1]) for name, table in tables.items()}
        return StorefrontSnapshot(
            **frames, rejects=rejects,
            read_counts={name: table.read for name, table in tables.items()},
            reject_counts={name: table.rejected for name, table in tables.items()},
        )
