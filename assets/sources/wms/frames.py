"""WMS records -> polars frames of the raw tables, and rejects.

Validation is the models' job (``pipelines.records.wms``); this module turns what they accept
into rows and what they refuse into ``recon.rejects`` rows: the model's reason, the grain
columns the record names when they are readable, and a payload of the model's fields only.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

import polars as pl
import pydantic

from pipelines.records.base import payload, reason
from pipelines.records.values import read_instant
from pipelines.records.wms import ReturnSummary, StockAdjustment, Stock, WmsReturn

RETURN_SCHEMA = {
    "return_reference": pl.Utf8, "source": pl.Utf8, "sales_order_channel": pl.Utf8,
    "order_reference": pl.Utf8, "state": pl.Utf8, "tracking_id": pl.Utf8, "cargo_carrier": pl.Utf8,
    "created_at": pl.Datetime("us"), "updated_at": pl.Datetime("us"), "arrived_at": pl.Datetime("us"),
    "completed_at": pl.Datetime("us"), "courier_request": pl.Utf8, "tag": pl.Utf8,
}
LINE_ITEM_SCHEMA = {
    "return_reference": pl.Utf8, "return_updated_at": pl.Datetime("us"), "line_item_reference": pl.Utf8,
    "sku": pl.Utf8, "processed_at": pl.Datetime("us"), "state": pl.Utf8, "damaged_state": pl.Utf8,
    "serial_number": pl.Utf8,
}
ADJUSTMENT_SCHEMA = {"adjustment_id": pl.Utf8, "transaction_number": pl.Utf8, "transaction_type": pl.Utf8,
                     "completed_at": pl.Datetime("us"), "tag": pl.Utf8}
ADJUSTMENT_LINE_SCHEMA = {"transaction_number": pl.Utf8, "line_id": pl.Utf8, "product_name": pl.Utf8,
                          "sku": pl.Utf8, "lost_amount": pl.Int32, "found_amount": pl.Int32,
                          "put_in_quarantine_amount": pl.Int32, "release_from_quarantine_amount": pl.Int32}
STOCK_COUNTS = ("total_stock_amount", "available_stock", "reserved_stock", "received_item_amount",
                "damaged_item_amount", "expired_amount", "lost_item_amount")
STOCK_SCHEMA = {"sku": pl.Utf8, "name": pl.Utf8, "updated_at": pl.Datetime("us"), **{c: pl.Int64 for c in STOCK_COUNTS}}
REJECT_SCHEMA = {"source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
                 "order_reference": pl.Utf8, "return_reference": pl.Utf8}
_RETURN_COLUMNS = tuple(RETURN_SCHEMA)
_UNIT_COLUMNS = ("line_item_reference", "sku", "processed_at", "state", "damaged_state", "serial_number")
_ADJUSTMENT_COLUMNS = tuple(ADJUSTMENT_SCHEMA)
_ADJUSTMENT_LINE_COLUMNS = tuple(c for c in ADJUSTMENT_LINE_SCHEMA if c != "transaction_number")


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 (``2024-02-23T11:11:18.810942Z``) -> naive UTC datetime; None stays None."""
    return read_instant(value)


def instant_or_none(value: Any) -> datetime | None:
    """An instant when the value reads as one, else None (never raises)."""
    try:
        return read_instant(value)
    except (TypeError, ValueError):
        return None


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def grain(value: Any) -> str | None:
    """A key a reject names, when it is readable as one (else None)."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def field_of(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def reject_row(source: str, model: type[pydantic.BaseModel], item: Any, why: str, key: str | None,
               *, order_reference: Any = None, return_reference: Any = None) -> dict:
    return {"source": source, "record_key": key, "reason": why, "payload": payload(model, item),
            "order_reference": grain(order_reference), "return_reference": grain(return_reference)}


def _validated(model: type[pydantic.BaseModel], item: Any) -> tuple[Any, str | None]:
    try:
        return model.model_validate(item), None
    except pydantic.ValidationError as exc:
        return None, reason(exc)


def _split(model: type[pydantic.BaseModel], items: Iterable[Any], source: str, key: str,
           **grain_fields: str) -> tuple[list[Any], list[dict]]:
    """(records the model accepts, reject rows of the others): a reject is keyed by the record's
    ``key`` field (or its position) and names the grains ``grain_fields`` point at."""
    records: list[Any] = []
    rejects: list[dict] = []
    for index, item in enumerate(items):
        record, why = _validated(model, item)
        if record is not None:
            records.append(record)
            continue
        grains = {column: field_of(item, name) for column, name in grain_fields.items()}
        rejects.append(reject_row(source, model, item, why, grain(field_of(item, key)) or f"#{index}", **grains))
    return records, rejects


def returns_to_frames(items: Iterable[Any], source: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """API return records -> (returns, units, rejects): each record loads or is rejected."""
    records, rejects = _split(WmsReturn, items, source, "returnReferenceNumber",
                              order_reference="salesOrderReferenceNumber", return_reference="returnReferenceNumber")
    returns = [tuple(getattr(r, c) for c in _RETURN_COLUMNS) for r in records]
    units = [(r.return_reference, r.updated_at, *(getattr(u, c) for c in _UNIT_COLUMNS))
             for r in records for u in r.line_items or ()]
    return (pl.DataFrame(returns, schema=RETURN_SCHEMA, orient="row"),
            pl.DataFrame(units, schema=LINE_ITEM_SCHEMA, orient="row"),
            pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def probe_summary(item: Any) -> tuple[str | None, str | None]:
    """A tracking-probe answer item -> (its return reference, None) or (None, reason)."""
    record, why = _validated(ReturnSummary, item)
    return (record.return_reference, None) if record is not None else (None, why)


def adjustments_to_frames(items: Iterable[Any]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Stock adjustments -> (transactions, lines, rejects): each record loads or is rejected."""
    records, rejects = _split(StockAdjustment, items, "wms_stock_adjustments", "transactionNumber",
                              return_reference="tag")
    heads = [tuple(getattr(r, c) for c in _ADJUSTMENT_COLUMNS) for r in records]
    lines = [(r.transaction_number, *(getattr(li, c) for c in _ADJUSTMENT_LINE_COLUMNS))
             for r in records for li in r.line_items or ()]
    return (pl.DataFrame(heads, schema=ADJUSTMENT_SCHEMA, orient="row"),
            pl.DataFrame(lines, schema=ADJUSTMENT_LINE_SCHEMA, orient="row"),
            pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def stocks_to_frames(items: Iterable[Any]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stock records -> (stocks, rejects): each record loads or is rejected."""
    records, rejects = _split(Stock, items, "wms_stocks", "sku")
    rows = [tuple(getattr(r, c) for c in STOCK_SCHEMA) for r in records]
    return pl.DataFrame(rows, schema=STOCK_SCHEMA, orient="row"), pl.DataFrame(rejects, schema=REJECT_SCHEMA)


def collapse_latest(items: Iterable[Any]) -> list[Any]:
    """One record per returnReferenceNumber: the latest updatedAt, compared as instants (0 to 6
    fractional digits); the last one seen on ties. An unparsable updatedAt sorts first (its record
    is rejected later, unless a parsable version wins). Records that are not objects, or whose
    reference is unreadable, are kept one by one (to be rejected), never merged."""
    best: dict[Any, tuple[datetime, Any]] = {}
    floor = datetime.min
    for index, item in enumerate(items):
        ref = grain(field_of(item, "returnReferenceNumber"))
        key = ref if ref is not None else ("unreadable", index)
        when = instant_or_none(field_of(item, "updatedAt")) or floor
        current = best.get(key)
        if current is None or when >= current[0]:
            best[key] = (when, item)
    return [item for _, item in best.values()]
