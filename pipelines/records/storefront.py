"""Record models of the OpenCart storefront database, sources.md section 2: the only validation of
its rows. One model per table the connector reads; its fields are exactly the columns of that
raw table (``sql/schema/create_raw_storefront_tables.sql`` minus ``business_date``), so a
model's fields are also the allow-list of a reject's payload. Personal data (names, email,
telephone) and free-text comments are never a field (``PERSONAL_COLUMNS``).

- Values are read as the database columns they are: ids ``BIGINT`` (``integer(64)``), counts
  and flags ``INTEGER`` (``integer(32)``), money ``DECIMAL(15,4)`` and rates ``DECIMAL(15,8)``
  rounded half up to their scale (as MySQL stores them), text kept as stored (``""`` stays
  ``""``). Drivers may hand a number as text, an integral float or a ``Decimal``: all read.
- MySQL zero dates (``0000-00-00``, ``0000-00-00 00:00:00``, zero month/day) and empty strings
  read as null. OpenCart writes datetimes in the shop's local time (its ``config_timezone``):
  every ``Instant`` is converted from the zone of the validation context (``{"zone": tzinfo}``)
  to naive UTC (ambiguous times take the first occurrence, nonexistent ones shift forward, as
  zoneinfo does with ``fold=0``). ``date_ordered`` is a DATE and stays as it is.
- The column types are the base's (``integer``, ``ColumnText``, ``decimal``), each with its
  common case first for speed (an ``int``, a ``str``, a price seen before); every other value
  is read by the base's own function, so values and reasons are the same.
- Per record: the table's key is required; an order line's ``order_id`` and a history row's
  ``return_id`` are required (``NOT NULL`` in the raw tables), and so is an RMA's ``order_id``;
  an RMA's ``quantity`` is a positive integer; an RMA's and a history row's ``date_added`` is
  required (``DATE_ADDED_MISSING``: without it the record cannot be placed in time). Status,
  reason and action ids and names are not checked: unknown or missing ones load.

Rules across records (a parent exists, an RMA's model matches a line of its order, duplicate
keys) are ``pipelines.resources.storefront_integrity``'s.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator

from pipelines.records.base import Record
from pipelines.records.values import Day, Instant, read_decimal, read_integer, read_text, required

# --------------------------------------------------------------------------- column types
# The base's types, read the same way (every value that is not the common case is read by the
# base function itself, so values and reasons are the base's); only faster, because a
# million-row read spends most of its time in these validators.


def _column_integer(bits: int) -> Any:
    """``integer(bits)`` (lax): an ``int`` in range, or null, is returned as it is."""
    low, high = -2 ** (bits - 1), 2 ** (bits - 1)

    def read(value: Any) -> int | None:
        if value is None or (type(value) is int and low <= value < high):
            return value
        return read_integer(value, bits=bits)

    return Annotated[int | None, PlainValidator(read)]


def _column_text(value: Any) -> str | None:
    """``ColumnText``: a ``str``, or null, is already as stored."""
    if value is None or type(value) is str:
        return value
    return read_text(value, blank_is_null=False)


_REMEMBERED = 1 << 16  # distinct values remembered per decimal type


def _column_decimal(precision: int, scale: int) -> Any:
    """``decimal(precision, scale, exact=False)``, remembered: a shop has few distinct prices, and
    reading one is the dearest step of a row. A float, int, str or Decimal (SQLite hands floats,
    MySQL Decimals) is remembered by its type and exact text (``-0.0`` is not ``0.0``, nor
    ``1.50`` ``1.5``), and only once read without error; any other value is read every time."""
    remembered: dict[tuple[type, Any], Decimal | None] = {}

    def read(value: Any) -> Decimal | None:
        kind = type(value)
        if kind is int or kind is str:
            key = (kind, value)
        elif kind is float:
            key = (kind, repr(value))
        elif kind is Decimal:
            key = (kind, str(value))
        else:
            return read_decimal(value, precision=precision, scale=scale, exact=False)
        try:
            return remembered[key]
        except KeyError:
            number = read_decimal(value, precision=precision, scale=scale, exact=False)
            if len(remembered) < _REMEMBERED:
                remembered[key] = number
            return number

    return Annotated[Decimal | None, PlainValidator(read)]


Id = _column_integer(64)           # BIGINT: every id                      (= integer(64))
Int = _column_integer(32)          # INTEGER: counts, flags, status ids     (= integer(32))
Varchar = Annotated[str | None, PlainValidator(_column_text)]  # kept as stored (= ColumnText)
Money = _column_decimal(15, 4)     # DECIMAL(15,4), rounded half up        (= decimal(15, 4, exact=False))
Rate = _column_decimal(15, 8)      # DECIMAL(15,8): an exchange rate       (= decimal(15, 8, exact=False))


# --------------------------------------------------------------------------- per-record rules

NOT_PLACEABLE = "is missing or a zero date: cannot be placed in time"
DATE_ADDED_MISSING = f"date_added {NOT_PLACEABLE}"  # the reason, as the base words it

# Columns that hold personal data or customer free text: never selected, never a field.
PERSONAL_COLUMNS = frozenset({"firstname", "lastname", "email", "telephone", "comment", "fax",
                              "custom_field", "ip", "user_agent", "accept_language"})


def _placeable(value: datetime | None) -> datetime:
    if value is None:
        raise ValueError(NOT_PLACEABLE)
    return value


PlacedInstant = Annotated[Instant, AfterValidator(_placeable)]
"""A datetime a record is placed in time by: null, blank or a zero date is a reject."""


def _shown(value: Any) -> str:
    return repr(value[:40] if isinstance(value, str) else value)


def _positive(value: Any) -> int:
    try:
        number = read_integer(value, bits=32)
    except ValueError:
        number = None
    if number is None or number <= 0:
        raise ValueError(f"is not a positive integer: {_shown(value)}")
    return number


PositiveInt = Annotated[int, PlainValidator(_positive)]
"""An INTEGER above 0; anything else (null, text, 0, out of range) says so with the value as read."""


# --------------------------------------------------------------------------- the models


class Order(Record):
    order_id: required(Id)
    store_id: Int = None
    customer_id: Id = None
    total: Money = None
    order_status_id: Int = None           # 0: an abandoned checkout, loaded as read
    order_status_name: Varchar = None
    currency_code: Varchar = None
    currency_value: Rate = None
    date_added: Instant = None
    date_modified: Instant = None


class OrderLine(Record):
    order_product_id: required(Id)
    order_id: required(Id)
    product_id: Id = None
    name: Varchar = None
    model: Varchar = None                  # the SKU
    quantity: Int = None
    price: Money = None                    # per unit, store default currency
    tax: Money = None                      # per unit, store default currency
    total: Money = None


class Product(Record):
    product_id: required(Id)
    model: Varchar = None
    quantity: Int = None                   # storefront stock
    price: Money = None
    subtract: Int = None
    status: Int = None
    date_modified: Instant = None


class Return(Record):
    """An RMA. ``product_id`` decides nothing (0 for a typed-in model, or a product re-created
    since): its ``model`` is matched against its order's lines, across records."""

    return_id: required(Id)
    order_id: required(Id)
    product_id: Id = None
    customer_id: Id = None
    product: Varchar = None
    model: Varchar = None
    quantity: PositiveInt
    opened: Int = None
    return_reason_id: Int = None
    return_reason_name: Varchar = None
    return_action_id: Int = None
    return_action_name: Varchar = None
    return_status_id: Int = None
    return_status_name: Varchar = None
    date_ordered: Day = None
    date_added: PlacedInstant              # when the RMA was opened
    date_modified: Instant = None


class ReturnHistory(Record):
    """A status change of an RMA. ``tracking_id`` is what the connector extracted from the
    comment (the comment itself is never a field)."""

    return_history_id: required(Id)
    return_id: required(Id)
    return_status_id: Int = None
    return_status_name: Varchar = None
    notify: Int = None
    tracking_id: Varchar = None
    date_added: PlacedInstant


MODELS: tuple[type[Record], ...] = (Order, OrderLine, Product, Return, ReturnHistory)
assert all(PERSONAL_COLUMNS.isdisjoint(model.model_fields) for model in MODELS)
