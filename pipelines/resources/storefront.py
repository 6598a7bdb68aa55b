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
- MySQL zero dates (``0000-00-00``, ``0000-00-00 00:00:00``, zero month/day) and empty
  strings read as null. OpenCart writes datetimes in the shop's local time (its
  ``config_timezone``, ``STOREFRONT_TIMEZONE``): every datetime is converted from that zone
  to naive UTC (ambiguous times take the first occurrence, nonexistent ones shift forward, as
  zoneinfo does with ``fold=0``). ``date_ordered`` is a DATE and stays as it is.
- Every record is validated in Python; a bad one goes to the rejects frame with its reason,
  the grain it names (order, order line, RMA) and a JSON payload of an allow-list of its
  non-personal columns, and the others still load. Rejected: a bad value, an order line
  whose order does not exist, an RMA whose order does not exist or has no line with the
  RMA's model (case-insensitive, surrounding spaces ignored, as MySQL's default collation
  compares), an RMA whose quantity is not a positive integer, a history row whose return
  does not exist, and a return or history row whose ``date_added`` is missing or a zero
  date (it cannot be placed in time).
- Orders with ``order_status_id`` 0 (abandoned checkouts) are loaded as read; the canonical
  SQL leaves them out.
- The connection URL may hold a password: it never appears in a message, log or frame
  (``safe_url`` hides it); a connection failure raises ``SourceUnavailable``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
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
from pipelines.resources.secrets import reveal

SOURCE = "storefront"
LANGUAGE_ID = 1
_PREFIX_RE = re.compile(r"[A-Za-z0-9_]*")
_ZERO_DATE_RE = re.compile(r"^\d{4}-(?:00-\d{2}|\d{2}-00)")  # 0000-00-00, 2024-00-10, 2024-05-00

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
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
    # the grains the rejected record itself names (null when unreadable): the reconciliation
    # leaves them unjudged instead of judging them as if the record did not exist
    "order_reference": pl.Utf8, "order_line_reference": pl.Utf8, "rma_reference": pl.Utf8,
    "return_reference": pl.Utf8, "credit_note_number": pl.Utf8,
}
GRAIN_COLUMNS = ("order_reference", "order_line_reference", "rma_reference", "return_reference",
                 "credit_note_number")

# Columns that hold personal data or customer free text: never selected, never in a payload.
PERSONAL_COLUMNS = frozenset({"firstname", "lastname", "email", "telephone", "comment", "fax",
                              "custom_field", "ip", "user_agent", "accept_language"})

# raw table name -> (snapshot attribute, schema)
RAW_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    "raw.oc_orders": ("orders", ORDERS_SCHEMA),
    "raw.oc_order_lines": ("order_lines", ORDER_LINES_SCHEMA),
    "raw.oc_products": ("products", PRODUCTS_SCHEMA),
    "raw.oc_returns": ("returns", RETURNS_SCHEMA),
    "raw.oc_return_history": ("return_history", RETURN_HISTORY_SCHEMA),
}

# Reject payloads: an allow-list per table, the (non-personal) columns the spec names and the
# reader selects; for history, the extracted tracking number instead of the comment.
PAYLOAD_COLUMNS: dict[str, tuple[str, ...]] = {table: tuple(schema) for table, (_, schema) in RAW_TABLES.items()}
assert all(PERSONAL_COLUMNS.isdisjoint(columns) for columns in PAYLOAD_COLUMNS.values())

DATE_ADDED_MISSING = "date_added is missing or a zero date: cannot be placed in time"


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


# --------------------------------------------------------------------------- value parsing

class BadValue(ValueError):
    """A column value that cannot be read as its declared type."""


def _text(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise BadValue("is not valid UTF-8 text") from None
    return value


def to_str(value: Any) -> str | None:
    value = _text(value)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def to_int(value: Any, *, bits: int = 64) -> int | None:
    value = _text(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"is not an integer: {value!r}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, (float, Decimal)):
        try:
            integral = value == int(value)
        except (ValueError, OverflowError, InvalidOperation):
            integral = False
        if not integral:
            raise BadValue(f"is not an integer: {value!r}")
        result = int(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped == "":
            return None
        if not re.fullmatch(r"[+-]?\d+", stripped):
            raise BadValue(f"is not an integer: {value!r}")
        result = int(stripped)
    else:
        raise BadValue(f"is not an integer: {value!r}")
    limit = 2 ** (bits - 1)
    if not -limit <= result < limit:
        raise BadValue(f"is out of range: {result}")
    return result


def to_decimal(value: Any, *, precision: int, scale: int) -> Decimal | None:
    value = _text(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadValue(f"is not a number: {value!r}")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            number = Decimal(value)
        elif isinstance(value, str):
            if value.strip() == "":
                return None
            number = Decimal(value.strip())
        else:
            raise BadValue(f"is not a number: {value!r}")
    except InvalidOperation:
        raise BadValue(f"is not a number: {value!r}") from None
    if not number.is_finite():
        raise BadValue(f"is not a finite number: {value!r}")
    # range first: quantizing a huge number past the context's precision raises InvalidOperation
    if abs(number) >= Decimal(10) ** (precision - scale):
        raise BadValue(f"is out of range for DECIMAL({precision},{scale}): {value!r}")
    number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if abs(number) >= Decimal(10) ** (precision - scale):  # 9999.99995 rounds up past the range
        raise BadValue(f"is out of range for DECIMAL({precision},{scale}): {value!r}")
    return number


def to_datetime(value: Any, zone: tzinfo | None = None) -> datetime | None:
    """MySQL zero dates and empty strings -> None; aware values -> naive UTC; naive values are
    local times of ``zone`` (None: UTC) -> naive UTC (``fold=0``: ambiguous -> first occurrence,
    nonexistent -> shifted forward, as zoneinfo does)."""
    value = _text(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text == "" or _ZERO_DATE_RE.match(text):
            return None
        try:
            result = datetime.fromisoformat(text)
        except ValueError:
            raise BadValue(f"is not a date: {value!r}") from None
    else:
        raise BadValue(f"is not a date: {value!r}")
    if result.tzinfo is None:
        if zone is None or zone is timezone.utc:
            return result
        result = result.replace(tzinfo=zone, fold=0)
    try:
        return result.astimezone(timezone.utc).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise BadValue(f"is out of range in UTC: {value!r}") from None


def to_date(value: Any) -> date | None:
    """A DATE: no time, no zone (taken as written)."""
    result = to_datetime(value)
    return None if result is None else result.date()


def load_zone(name: str) -> tzinfo:
    """The shop's IANA time zone; an unknown name is ``SourceUnavailable``."""
    text = (name or "").strip()
    if text == "UTC":
        return timezone.utc
    try:
        return ZoneInfo(text)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError, a directory, a bad file
        raise SourceUnavailable(f"STOREFRONT_TIMEZONE {name!r} is not an IANA time zone") from None


def _converter(dtype: pl.DataType, zone: tzinfo | None = None) -> Callable[[Any], Any]:
    if dtype == pl.Int64:
        return lambda v: to_int(v, bits=64)
    if dtype == pl.Int32:
        return lambda v: to_int(v, bits=32)
    if isinstance(dtype, pl.Decimal):
        precision, scale = dtype.precision, dtype.scale
        return lambda v: to_decimal(v, precision=precision, scale=scale)
    if dtype == pl.Date:
        return to_date
    if isinstance(dtype, pl.Datetime):
        return lambda v: to_datetime(v, zone)
    return to_str


def _payload(row: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    """JSON of the allow-listed columns of a source row (values as read)."""
    def default(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        return str(value)

    return json.dumps({c: row[c] for c in columns if c in row}, default=default, ensure_ascii=False)


class _Table:
    """Accumulates the validated rows of one raw table as columns."""

    def __init__(self, name: str, schema: dict[str, pl.DataType], key: str, zone: tzinfo | None = None):
        self.name = name
        self.schema = schema
        self.key = key
        self.columns: dict[str, list[Any]] = {c: [] for c in schema}
        self.converters = {c: _converter(t, zone) for c, t in schema.items()}
        self.seen: set[int] = set()      # keys of the rows that passed validation (added)
        self.keys_read: set[int] = set()  # keys of every row converted so far
        self.read = 0
        self.rejected = 0

    def convert(self, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        values: dict[str, Any] = {}
        problems: list[str] = []
        for column, convert in self.converters.items():
            try:
                values[column] = convert(row.get(column))
            except BadValue as exc:
                values[column] = None
                problems.append(f"{column} {exc}")
        key = values.get(self.key)
        if key is None and not any(p.startswith(f"{self.key} ") for p in problems):
            problems.append(f"{self.key} is missing")
        elif key is not None:
            if key in self.keys_read:
                problems.append(f"duplicate {self.key} {key}")
            self.keys_read.add(key)
        return values, problems

    def add(self, values: dict[str, Any]) -> None:
        self.seen.add(values[self.key])
        for column in self.schema:
            self.columns[column].append(values[column])

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=self.schema)


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
                return self._read(engine, conn, pattern, zone)
            except SourceUnavailable:
                raise
            except sa.exc.SQLAlchemyError as exc:
                raise self._unavailable(exc, "could not be read") from None
            finally:
                conn.close()
        finally:
            engine.dispose()

    def _rows(self, conn: sa.Connection, sql: str) -> Iterator[Mapping[str, Any]]:
        result = conn.execution_options(yield_per=5000).execute(sa.text(sql))
        for row in result.mappings():
            yield row

    def _names(self, engine: sa.Engine, table: str, id_column: str) -> str:
        """Derived table id -> name of a language table, language 1 (one name per id)."""
        return (f"(SELECT {id_column}, MIN(name) AS name FROM {self._table(engine, table)} "
                f"WHERE language_id = {LANGUAGE_ID} GROUP BY {id_column})")

    def _read(self, engine: sa.Engine, conn: sa.Connection, pattern: re.Pattern[str],
              zone: tzinfo) -> StorefrontSnapshot:
        t = lambda name: self._table(engine, name)  # noqa: E731
        orders = _Table("raw.oc_orders", ORDERS_SCHEMA, "order_id", zone)
        lines = _Table("raw.oc_order_lines", ORDER_LINES_SCHEMA, "order_product_id", zone)
        products = _Table("raw.oc_products", PRODUCTS_SCHEMA, "product_id", zone)
        returns = _Table("raw.oc_returns", RETURNS_SCHEMA, "return_id", zone)
        history = _Table("raw.oc_return_history", RETURN_HISTORY_SCHEMA, "return_history_id", zone)

        # ---- 1. read, children before parents (MyISAM: no transaction). Each row is converted
        # on its own; the checks against its parent wait until the parent has been read.
        Read = list[tuple[dict[str, Any], dict[str, Any], list[str]]]  # (source row, values, problems)

        def read(table: _Table, sql: str, prepare: Callable[[dict[str, Any]], None] | None = None) -> Read:
            rows: Read = []
            for source_row in self._rows(conn, sql):
                table.read += 1
                row = dict(source_row)
                if prepare is not None:
                    prepare(row)
                values, problems = table.convert(row)
                rows.append((row, values, problems))
            return rows

        def with_tracking(row: dict[str, Any]) -> None:
            # the comment is read only to extract the tracking number, then dropped
            comment = row.pop("comment", None)
            try:
                row["tracking_id"] = extract_tracking(pattern, to_str(comment))
            except BadValue:
                row["tracking_id"] = None

        history_rows = read(history, f"""
                SELECT h.return_history_id, h.return_id, h.return_status_id,
                       rs.name AS return_status_name, h.notify, h.comment, h.date_added
                FROM {t('return_history')} h
                LEFT JOIN {self._names(engine, 'return_status', 'return_status_id')} rs
                       ON rs.return_status_id = h.return_status_id
                ORDER BY h.return_history_id""", with_tracking)
        return_rows = read(returns, f"""
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
        line_rows = read(lines, f"""
                SELECT order_product_id, order_id, product_id, name, model, quantity, price, tax, total
                FROM {t('order_product')}
                ORDER BY order_product_id""")
        order_rows = read(orders, f"""
                SELECT o.order_id, o.store_id, o.customer_id, o.total, o.order_status_id,
                       os.name AS order_status_name, o.currency_code, o.currency_value,
                       o.date_added, o.date_modified
                FROM {t('order')} o
                LEFT JOIN {self._names(engine, 'order_status', 'order_status_id')} os
                       ON os.order_status_id = o.order_status_id
                ORDER BY o.order_id""")
        product_rows = read(products, f"""
                SELECT product_id, model, quantity, price, subtract, status, date_modified
                FROM {t('product')}
                ORDER BY product_id""")

        # ---- 2. validate, parents first
        rejects: dict[str, list[str | None]] = {c: [] for c in REJECTS_SCHEMA}

        def reject(table: _Table, key: str, problems: list[str], row: Mapping[str, Any], **grain: Any) -> None:
            table.rejected += 1
            rejects["source"].append(SOURCE)
            rejects["record_key"].append(key)
            rejects["reason"].append("; ".join(problems))
            rejects["payload"].append(_payload(row, PAYLOAD_COLUMNS[table.name]))
            for column in GRAIN_COLUMNS:
                value = grain.get(column)
                rejects[column].append(None if value is None else str(value))

        # orders (order_status_id 0, an abandoned checkout, loads as read: the SQL leaves it out)
        rejected_orders: set[str] = set()
        for row, values, problems in order_rows:
            if problems:
                reject(orders, f"order:{row.get('order_id')}", problems, row,
                       order_reference=values.get("order_id"))
                rejected_orders.add(str(values.get("order_id") or row.get("order_id")))
            else:
                orders.add(values)

        # order lines: their order must exist
        models_by_order: dict[int, set[str]] = {}
        for row, values, problems in line_rows:
            order_id = values.get("order_id")
            if order_id is None and not any(p.startswith("order_id ") for p in problems):
                problems.append("order_id is missing")
            elif order_id is not None and order_id not in orders.seen:
                problems.append(_missing_order(order_id, rejected_orders))
            if problems:
                reject(lines, f"order_product:{row.get('order_product_id')}", problems, row,
                       order_reference=order_id, order_line_reference=values.get("order_product_id"))
            else:
                lines.add(values)
                model = model_key(values["model"])
                if model is not None:
                    models_by_order.setdefault(order_id, set()).add(model)

        # products
        for row, values, problems in product_rows:
            if problems:
                reject(products, f"product:{row.get('product_id')}", problems, row)
            else:
                products.add(values)

        # returns (RMAs): quantity, order, order line (by model), date_added
        return_ids_in_source = {values["return_id"] for _, values, _ in return_rows
                                if values.get("return_id") is not None}
        for row, values, problems in return_rows:
            problems += _return_problems(row, values, problems, orders.seen, rejected_orders, models_by_order)
            if problems:
                return_id = values.get("return_id")
                reject(returns, f"RMA-{row.get('return_id')}", problems, row,
                       rma_reference=None if return_id is None else f"RMA-{return_id}",
                       order_reference=values.get("order_id"))
            else:
                returns.add(values)

        # return history: its return must exist (in the source, even if rejected), date_added
        for row, values, problems in history_rows:
            return_id = values.get("return_id")
            if return_id is None and not any(p.startswith("return_id ") for p in problems):
                problems.append("return_id is missing")
            elif return_id is not None and return_id not in return_ids_in_source:
                problems.append(f"return {return_id} does not exist")
            problems += _date_added_problems(values, problems)
            if problems:
                key = f"RMA-{row.get('return_id')}/history:{row.get('return_history_id')}"
                reject(history, key, problems, row,
                       rma_reference=None if return_id is None else f"RMA-{return_id}")
            else:
                history.add(values)

        tables = (orders, lines, products, returns, history)
        return StorefrontSnapshot(
            orders=orders.frame(), order_lines=lines.frame(), products=products.frame(),
            returns=returns.frame(), return_history=history.frame(),
            rejects=pl.DataFrame(rejects, schema=REJECTS_SCHEMA),
            read_counts={tb.name: tb.read for tb in tables},
            reject_counts={tb.name: tb.rejected for tb in tables},
        )


# --------------------------------------------------------------------------- validation rules

def extract_tracking(pattern: re.Pattern[str], comment: str | None) -> str | None:
    """Group 1 of the last match of the tracking pattern in a history comment (None if none)."""
    if not comment:
        return None
    found = None
    for match in pattern.finditer(comment):
        found = match.group(1)
    return found


def model_key(model: str | None) -> str | None:
    """A model (SKU) as MySQL's default collation compares it: case-insensitive, surrounding
    spaces ignored. A missing or blank model is None: it matches nothing."""
    if model is None:
        return None
    key = model.strip().casefold()
    return key or None


def _missing_order(order_id: int, rejected_orders: set[str]) -> str:
    if str(order_id) in rejected_orders:
        return f"order {order_id} was rejected (see its own reject)"
    return f"order {order_id} does not exist"


def _date_added_problems(values: dict[str, Any], problems: list[str]) -> list[str]:
    """A return or history row must be placeable in time (a zero date reads as null)."""
    if values.get("date_added") is None and not any(p.startswith("date_added ") for p in problems):
        return [DATE_ADDED_MISSING]
    return []


def _return_problems(row: Mapping[str, Any], values: dict[str, Any], problems: list[str],
                     order_ids: set[int], rejected_orders: set[str],
                     models_by_order: dict[int, set[str]]) -> list[str]:
    """Status and action names are not checked: unknown or missing ones load (the SQL and the
    data-quality checks call them unknown). ``product_id`` decides nothing (it may be 0 for a
    typed-in model, or name a product re-created since): the model does."""
    found: list[str] = []
    # quantity: a positive integer
    quantity = values.get("quantity")
    if any(p.startswith("quantity ") for p in problems) or quantity is None or quantity <= 0:
        problems[:] = [p for p in problems if not p.startswith("quantity ")]
        found.append(f"quantity is not a positive integer: {row.get('quantity')!r}")
    # order and order line
    order_id = values.get("order_id")
    if order_id is None:
        if not any(p.startswith("order_id ") for p in problems):
            found.append("order_id is missing")
    elif order_id not in order_ids:
        found.append(_missing_order(order_id, rejected_orders))
    else:
        model = values.get("model")
        key = model_key(model)
        if key is None or key not in models_by_order.get(order_id, ()):
            found.append(f"order {order_id} has no line with model {model!r}")
    # date_added: when the RMA was opened
    found += _date_added_problems(values, problems)
    return found
