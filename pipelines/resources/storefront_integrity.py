"""The rules across OpenCart records (sources.md section 2), and the rejects they make.

Every row has already been validated on its own by its model (``pipelines.records.storefront``);
``check_snapshot`` then decides, parents first, which rows load. A rejected row goes to the
rejects frame with one reason (the model's problems, then these), the grains it names (order,
order line, RMA) and a JSON payload of its model's fields, and the others still load.

- A key seen twice in a table: the later row is a reject (``duplicate order_id 5``).
- An order line whose order does not exist, an RMA whose order does not exist or has no line
  with the RMA's model (case-insensitive, surrounding spaces ignored, as MySQL's default
  collation compares: ``model_key``), and a history row whose return does not exist in the
  source (a rejected RMA's history still loads). A child whose parent exists but was rejected
  says so: ``order 5 was rejected (see its own reject)``.
- Orders with ``order_status_id`` 0 (abandoned checkouts) are loaded as read; the canonical
  SQL leaves them out.
- The checks run on a row's readable values even when its model rejected it, so a reason lists
  every problem the row has.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Mapping

import polars as pl
import pydantic

from pipelines.records.base import REASON_MAX_CHARS, Record, payload
from pipelines.records.storefront import Order, OrderLine, Product, Return, ReturnHistory

SOURCE = "storefront"

REJECTS_SCHEMA: dict[str, pl.DataType] = {
    "source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
    # the grains the rejected record itself names (null when unreadable): the reconciliation
    # leaves them unjudged instead of judging them as if the record did not exist
    "order_reference": pl.Utf8, "order_line_reference": pl.Utf8, "rma_reference": pl.Utf8,
    "return_reference": pl.Utf8, "credit_note_number": pl.Utf8,
}
GRAIN_COLUMNS = ("order_reference", "order_line_reference", "rma_reference", "return_reference",
                 "credit_note_number")

# raw table name -> the model of its rows (its fields: the table's columns) and the table's key
MODELS: dict[str, type[Record]] = {
    "raw.oc_orders": Order, "raw.oc_order_lines": OrderLine, "raw.oc_products": Product,
    "raw.oc_returns": Return, "raw.oc_return_history": ReturnHistory,
}
KEYS = {"raw.oc_orders": "order_id", "raw.oc_order_lines": "order_product_id", "raw.oc_products": "product_id",
        "raw.oc_returns": "return_id", "raw.oc_return_history": "return_history_id"}

Values = dict[str, Any]
Row = tuple[Mapping[str, Any], Values | None, str | None]
"""A row as read: (source row, its record's values by field or None, the model's reason or None).
The values are the record's own dict (``vars(record)``), not the record: a dict of plain values
is not tracked by the garbage collector, a model instance is (a million of them held until the
parents are read made the read a quarter slower)."""


def model_key(model: str | None) -> str | None:
    """A model (SKU) as MySQL's default collation compares it: case-insensitive, surrounding
    spaces ignored. A missing or blank model is None: it matches nothing."""
    if model is None:
        return None
    key = model.strip().casefold()
    return key or None


@functools.cache
def _reader(model: type[Record], name: str) -> pydantic.TypeAdapter:
    info = model.model_fields[name]
    return pydantic.TypeAdapter(Annotated[(info.annotation, *info.metadata)])


def readable(model: type[Record], row: Mapping[str, Any], values: Values | None, name: str) -> Any:
    """A field's value as its model reads it; for a rejected row, None if that value is bad."""
    if values is not None:
        return values[name]
    try:
        return _reader(model, name).validate_python(row.get(name))
    except pydantic.ValidationError:
        return None


@dataclass
class Table:
    """One raw table after the rules: the values of the records that load, how many rows were
    read and how many rejected."""

    name: str
    loaded: list[Values] = field(default_factory=list)
    read: int = 0
    rejected: int = 0
    _keys: set[Any] = field(default_factory=set)

    @property
    def model(self) -> type[Record]:
        return MODELS[self.name]

    @property
    def key(self) -> str:
        return KEYS[self.name]

    def checked(self, rows: Iterable[Row]) -> Iterable[tuple[Mapping[str, Any], Values | None, list[str]]]:
        """Each row with its problems so far: the model's reason, then a duplicate key."""
        for row, values, reason in rows:
            self.read += 1
            problems = [reason] if reason else []
            key = readable(self.model, row, values, self.key)
            if key is not None:
                if key in self._keys:
                    problems.append(f"duplicate {self.key} {key}")
                self._keys.add(key)
            yield row, values, problems


class Rejects:
    """The rejects frame, built row by row."""

    def __init__(self) -> None:
        self.columns: dict[str, list[str | None]] = {c: [] for c in REJECTS_SCHEMA}

    def add(self, table: Table, key: str, problems: list[str], row: Mapping[str, Any], **grain: Any) -> None:
        table.rejected += 1
        text = "; ".join(problems)
        self.columns["source"].append(SOURCE)
        self.columns["record_key"].append(key)
        self.columns["reason"].append(text if len(text) <= REASON_MAX_CHARS else text[:REASON_MAX_CHARS - 3] + "...")
        self.columns["payload"].append(payload(table.model, row))
        for column in GRAIN_COLUMNS:
            value = grain.get(column)
            self.columns[column].append(None if value is None else str(value))

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.columns, schema=REJECTS_SCHEMA)


def _missing_order(order_id: int, rejected_orders: set[int]) -> str:
    if order_id in rejected_orders:
        return f"order {order_id} was rejected (see its own reject)"
    return f"order {order_id} does not exist"


def check_snapshot(orders: list[Row], lines: list[Row], products: list[Row], returns: list[Row],
                   history: list[Row]) -> tuple[dict[str, Table], pl.DataFrame]:
    """Raw table name -> its checked table, and the rejects frame."""
    rejects = Rejects()
    t_orders, t_lines, t_products, t_returns, t_history = (Table(name) for name in MODELS)

    # orders (order_status_id 0, an abandoned checkout, loads as read: the SQL leaves it out)
    order_ids: set[int] = set()
    rejected_orders: set[int] = set()
    for row, values, problems in t_orders.checked(orders):
        if problems:
            order_id = readable(Order, row, values, "order_id")
            rejects.add(t_orders, f"order:{row.get('order_id')}", problems, row, order_reference=order_id)
            if order_id is not None:
                rejected_orders.add(order_id)
        else:
            t_orders.loaded.append(values)
            order_ids.add(values["order_id"])

    # order lines: their order must exist
    models_by_order: dict[int, set[str]] = {}
    for row, values, problems in t_lines.checked(lines):
        order_id = readable(OrderLine, row, values, "order_id")
        if order_id is not None and order_id not in order_ids:
            problems.append(_missing_order(order_id, rejected_orders))
        if problems:
            rejects.add(t_lines, f"order_product:{row.get('order_product_id')}", problems, row,
                        order_reference=order_id,
                        order_line_reference=readable(OrderLine, row, values, "order_product_id"))
        else:
            t_lines.loaded.append(values)
            model = model_key(values["model"])
            if model is not None:
                models_by_order.setdefault(order_id, set()).add(model)

    # products
    for row, values, problems in t_products.checked(products):
        if problems:
            rejects.add(t_products, f"product:{row.get('product_id')}", problems, row)
        else:
            t_products.loaded.append(values)

    # returns (RMAs): their order, and a line of it with the RMA's model
    return_ids_in_source = {readable(Return, row, values, "return_id") for row, values, _ in returns} - {None}
    for row, values, problems in t_returns.checked(returns):
        order_id = readable(Return, row, values, "order_id")
        if order_id is not None:
            if order_id not in order_ids:
                problems.append(_missing_order(order_id, rejected_orders))
            else:
                model = readable(Return, row, values, "model")
                key = model_key(model)
                if key is None or key not in models_by_order.get(order_id, ()):
                    problems.append(f"order {order_id} has no line with model {model!r}")
        if problems:
            return_id = readable(Return, row, values, "return_id")
            rejects.add(t_returns, f"RMA-{row.get('return_id')}", problems, row,
                        rma_reference=None if return_id is None else f"RMA-{return_id}",
                        order_reference=order_id)
        else:
            t_returns.loaded.append(values)

    # return history: its return must exist (in the source, even if rejected)
    for row, values, problems in t_history.checked(history):
        return_id = readable(ReturnHistory, row, values, "return_id")
        if return_id is not None and return_id not in return_ids_in_source:
            problems.append(f"return {return_id} does not exist")
        if problems:
            rejects.add(t_history, f"RMA-{row.get('return_id')}/history:{row.get('return_history_id')}",
                        problems, row, rma_reference=None if return_id is None else f"RMA-{return_id}")
        else:
            t_history.loaded.append(values)

    return {t.name: t for t in (t_orders, t_lines, t_products, t_returns, t_history)}, rejects.frame()
