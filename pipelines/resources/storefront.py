"""Read-only connector to the OpenCart database (sources.md section 2), through SQLAlchemy.

``StorefrontResource.read_snapshot()`` reads the orders, order lines, products, returns (RMAs)
and return history in one connection (one transaction: on MySQL/MariaDB InnoDB that is a
consistent snapshot) with plain, portable SQL (SQLite for the demo and tests,
``mysql+pymysql://`` in production) and returns polars frames whose columns are exactly those
of ``sql/schema/create_raw_storefront_tables.sql`` minus ``business_date``.

- Status, reason and action names are looked up in the language tables (``language_id`` 1)
  in SQL.
- Personal data (names, email, telephone) and free-text comments are never selected; the
  only exception is ``oc_return_history.comment``, read row by row in Python just to extract
  the tracking number with the configured pattern: only the number (group 1) is kept.
- MySQL zero dates (``0000-00-00``, ``0000-00-00 00:00:00``, zero month/day) and empty
  strings read as null; dates are naive UTC ``datetime`` (OpenCart stores them without a
  zone: they are taken as UTC).
- Every record is validated; a bad one goes to the rejects frame with its reason and a JSON
  payload of its (non-personal) columns, and the others still load. An RMA whose status or
  action name is not in the configured maps, whose order or order line does not exist, or
  whose quantity is not a positive integer is rejected.
- The connection URL may hold a password: it never appears in a message, log or frame
  (``safe_url`` hides it); a connection failure raises ``SourceUnavailable``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import quote, quote_plus

import dagster as dg
import polars as pl
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from pipelines.errors import SourceUnavailable

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
}

# raw table name -> (snapshot attribute, schema)
RAW_TABLES: dict[str, tuple[str, dict[str, pl.DataType]]] = {
    "raw.oc_orders": ("orders", ORDERS_SCHEMA),
    "raw.oc_order_lines": ("order_lines", ORDER_LINES_SCHEMA),
    "raw.oc_products": ("products", PRODUCTS_SCHEMA),
    "raw.oc_returns": ("returns", RETURNS_SCHEMA),
    "raw.oc_return_history": ("return_history", RETURN_HISTORY_SCHEMA),
}


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
    number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if abs(number) >= Decimal(10) ** (precision - scale):
        raise BadValue(f"is out of range for DECIMAL({precision},{scale}): {value!r}")
    return number


def to_datetime(value: Any) -> datetime | None:
    """MySQL zero dates and empty strings -> None; aware values -> naive UTC."""
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
    if result.tzinfo is not None:
        result = result.astimezone(timezone.utc).replace(tzinfo=None)
    return result


def to_date(value: Any) -> date | None:
    result = to_datetime(value)
    return None if result is None else result.date()


def _converter(dtype: pl.DataType) -> Callable[[Any], Any]:
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
        return to_datetime
    return to_str


def _payload(row: Mapping[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8", "replace")
        return str(value)

    return json.dumps(dict(row), default=default, ensure_ascii=False)


class _Table:
    """Accumulates the validated rows of one raw table as columns."""

    def __init__(self, name: str, schema: dict[str, pl.DataType], key: str):
        self.name = name
        self.schema = schema
        self.key = key
        self.columns: dict[str, list[Any]] = {c: [] for c in schema}
        self.converters = {c: _converter(t) for c, t in schema.items()}
        self.seen: set[int] = set()
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
        elif key is not None and key in self.seen:
            problems.append(f"duplicate {self.key} {key}")
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

    # -- connection

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden: the only form that may be shown anywhere."""
        try:
            return make_url(self.db_url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL is shown as nothing at all
            return "<invalid database URL>"

    def _scrub(self, text: str) -> str:
        """First line of an error text, with the password (if any) masked."""
        line = (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"
        try:
            password = make_url(self.db_url).password
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
            url = make_url(self.db_url)
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

    def read_snapshot(self, tracking_pattern: str, status_map: Mapping[str, str],
                      action_map: Mapping[str, str]) -> StorefrontSnapshot:
        """Read and validate every storefront table the reconciliation uses.

        ``status_map`` / ``action_map`` are the configured OpenCart name -> canonical maps
        (keys compared case-insensitively); ``tracking_pattern`` has one capture group.
        """
        pattern = re.compile(tracking_pattern)
        statuses = {str(k).strip().lower() for k in status_map}
        actions = {str(k).strip().lower() for k in action_map}
        engine = self._engine()
        try:
            try:
                conn = engine.connect()
            except Exception as exc:  # noqa: BLE001
                raise self._unavailable(exc) from None
            try:
                return self._read(engine, conn, pattern, statuses, actions)
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
              statuses: set[str], actions: set[str]) -> StorefrontSnapshot:
        t = lambda name: self._table(engine, name)  # noqa: E731
        rejects: dict[str, list[str]] = {c: [] for c in REJECTS_SCHEMA}

        def reject(table: _Table, key: str, problems: list[str], row: Mapping[str, Any]) -> None:
            table.rejected += 1
            rejects["source"].append(SOURCE)
            rejects["record_key"].append(key)
            rejects["reason"].append("; ".join(problems))
            rejects["payload"].append(_payload(row))

        # orders
        orders = _Table("raw.oc_orders", ORDERS_SCHEMA, "order_id")
        rejected_orders: set[str] = set()
        for row in self._rows(conn, f"""
                SELECT o.order_id, o.store_id, o.customer_id, o.total, o.order_status_id,
                       os.name AS order_status_name, o.currency_code, o.currency_value,
                       o.date_added, o.date_modified
                FROM {t('order')} o
                LEFT JOIN {self._names(engine, 'order_status', 'order_status_id')} os
                       ON os.order_status_id = o.order_status_id
                ORDER BY o.order_id"""):
            orders.read += 1
            values, problems = orders.convert(row)
            if problems:
                reject(orders, f"order:{row.get('order_id')}", problems, row)
                rejected_orders.add(str(values.get("order_id") or row.get("order_id")))
            else:
                orders.add(values)

        # order lines
        lines = _Table("raw.oc_order_lines", ORDER_LINES_SCHEMA, "order_product_id")
        lines_by_order: dict[int, list[tuple[int | None, str | None]]] = {}
        for row in self._rows(conn, f"""
                SELECT order_product_id, order_id, product_id, name, model, quantity, price, tax, total
                FROM {t('order_product')}
                ORDER BY order_product_id"""):
            lines.read += 1
            values, problems = lines.convert(row)
            order_id = values.get("order_id")
            if order_id is None and not any(p.startswith("order_id ") for p in problems):
                problems.append("order_id is missing")
            elif order_id is not None and order_id not in orders.seen:
                problems.append(_missing_order(order_id, rejected_orders))
            if problems:
                reject(lines, f"order_product:{row.get('order_product_id')}", problems, row)
            else:
                lines.add(values)
                lines_by_order.setdefault(order_id, []).append((values["product_id"], values["model"]))

        # products
        products = _Table("raw.oc_products", PRODUCTS_SCHEMA, "product_id")
        for row in self._rows(conn, f"""
                SELECT product_id, model, quantity, price, subtract, status, date_modified
                FROM {t('product')}
                ORDER BY product_id"""):
            products.read += 1
            values, problems = products.convert(row)
            if problems:
                reject(products, f"product:{row.get('product_id')}", problems, row)
            else:
                products.add(values)

        # returns (RMAs)
        returns = _Table("raw.oc_returns", RETURNS_SCHEMA, "return_id")
        return_ids_in_source: set[int] = set()
        for row in self._rows(conn, f"""
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
                ORDER BY r.return_id"""):
            returns.read += 1
            values, problems = returns.convert(row)
            if values.get("return_id") is not None:
                return_ids_in_source.add(values["return_id"])
            problems += _return_problems(row, values, problems, statuses, actions,
                                         orders.seen, rejected_orders, lines_by_order)
            if problems:
                reject(returns, f"RMA-{row.get('return_id')}", problems, row)
            else:
                returns.add(values)

        # return history: the comment is read only to extract the tracking number
        history = _Table("raw.oc_return_history", RETURN_HISTORY_SCHEMA, "return_history_id")
        for row in self._rows(conn, f"""
                SELECT h.return_history_id, h.return_id, h.return_status_id,
                       rs.name AS return_status_name, h.notify, h.comment, h.date_added
                FROM {t('return_history')} h
                LEFT JOIN {self._names(engine, 'return_status', 'return_status_id')} rs
                       ON rs.return_status_id = h.return_status_id
                ORDER BY h.return_history_id"""):
            history.read += 1
            row = dict(row)
            try:
                row["tracking_id"] = extract_tracking(pattern, to_str(row.pop("comment", None)))
            except BadValue:
                row["tracking_id"] = None
            values, problems = history.convert(row)
            return_id = values.get("return_id")
            if return_id is None and not any(p.startswith("return_id ") for p in problems):
                problems.append("return_id is missing")
            elif return_id is not None and return_id not in return_ids_in_source:
                problems.append(f"return {return_id} does not exist")
            problems += _status_problems(row, statuses)
            if problems:
                key = f"RMA-{row.get('return_id')}/history:{row.get('return_history_id')}"
                reject(history, key, problems, row)
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


def _missing_order(order_id: int, rejected_orders: set[str]) -> str:
    if str(order_id) in rejected_orders:
        return f"order {order_id} was rejected (see its own reject)"
    return f"order {order_id} does not exist"


def _status_problems(row: Mapping[str, Any], statuses: set[str]) -> list[str]:
    status_id = row.get("return_status_id")
    name = row.get("return_status_name")
    if name is None:
        return [f"return status id {status_id} has no name in language {LANGUAGE_ID}"]
    if str(name).strip().lower() not in statuses:
        return [f"unknown return status '{name}' (id {status_id}): not in rma_status_map"]
    return []


def _return_problems(row: Mapping[str, Any], values: dict[str, Any], problems: list[str],
                     statuses: set[str], actions: set[str], order_ids: set[int],
                     rejected_orders: set[str],
                     lines_by_order: dict[int, list[tuple[int | None, str | None]]]) -> list[str]:
    found: list[str] = []
    # status: always required
    found += _status_problems(row, statuses)
    # action: 0/null means "no action chosen yet" (OpenCart's default for a new return)
    action_id = values.get("return_action_id")
    action_name = row.get("return_action_name")
    if action_id not in (None, 0):
        if action_name is None:
            found.append(f"return action id {action_id} has no name in language {LANGUAGE_ID}")
        elif str(action_name).strip().lower() not in actions:
            found.append(f"unknown return action '{action_name}' (id {action_id}): not in rma_action_map")
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
        product_id, model = values.get("product_id"), values.get("model")
        candidates = lines_by_order.get(order_id, [])
        if not any((product_id and lp == product_id) or (model is not None and lm == model)
                   for lp, lm in candidates):
            found.append(f"order {order_id} has no line for product_id {product_id} / model {model!r}")
    return found
