"""Record models of the WMS (OPLOG.ONE-style) API, sources.md section 1: the only validation of
its records. A field the model names is the allow-list of a reject's payload; everything else a
record carries (``notes`` and other free text) is never read.

- ``WmsReturn`` (``/Returns/returnsWithLineItems``, ``/Returns/{ref}``) with its units
  (``WmsUnit``): a reference, ``createdAt`` and ``updatedAt`` are required; a unit needs its
  reference, its SKU and one of the four grades (an unknown grade cannot be counted: the whole
  return is rejected, the other returns load).
- ``ReturnSummary``: a ``GET /Returns?trackingId=`` answer item: only its reference is used.
- ``StockAdjustment`` with ``AdjustmentLine``: a completed transaction needs its number and
  ``completedAt`` (undated, it counts nowhere); every line its SKU and all four amounts as
  integers (a missing amount is unknown, not 0).
- ``Stock``: a SKU; the stock counts are integers when present.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.records.base import Record
from pipelines.records.values import Instant, Key, RequiredInstant, Text, integer, required

UNIT_STATES = ("WaitingToBeProcessed", "Missing", "Damaged", "Undamaged")
UnitState = Literal["WaitingToBeProcessed", "Missing", "Damaged", "Undamaged"]
Amount = required(integer(32, strict=True))
StockCount = integer(64, strict=True)


class WmsUnit(Record):
    line_item_reference: Key = Field(alias="lineItemReferenceNumber")
    sku: Key = Field(alias="sku")
    processed_at: Instant = Field(None, alias="processedAt")
    state: UnitState = Field(alias="state")
    damaged_state: Text = Field(None, alias="damagedState")
    serial_number: Text = Field(None, alias="serialNumber")


class WmsReturn(Record):
    return_reference: Key = Field(alias="returnReferenceNumber")
    source: Text = Field(None, alias="source")
    sales_order_channel: Text = Field(None, alias="salesOrderChannel")
    order_reference: Text = Field(None, alias="salesOrderReferenceNumber")
    state: Text = Field(None, alias="state")
    tracking_id: Text = Field(None, alias="trackingId")
    cargo_carrier: Text = Field(None, alias="cargoCarrier")
    created_at: RequiredInstant = Field(alias="createdAt")
    updated_at: RequiredInstant = Field(alias="updatedAt")
    arrived_at: Instant = Field(None, alias="arrivedToWarehouseAt")
    completed_at: Instant = Field(None, alias="completedAt")
    courier_request: Text = Field(None, alias="courierRequest")
    tag: Text = Field(None, alias="tag")
    line_items: list[WmsUnit] | None = Field(None, alias="lineItems")


class ReturnSummary(Record):
    return_reference: Key = Field(alias="returnReferenceNumber")
    order_reference: Text = Field(None, alias="salesOrderReferenceNumber")
    tracking_id: Text = Field(None, alias="trackingId")
    state: Text = Field(None, alias="state")


class AdjustmentLine(Record):
    line_id: Text = Field(None, alias="id")
    product_name: Text = Field(None, alias="productName")
    sku: Key = Field(alias="sku")
    lost_amount: Amount = Field(alias="lostAmount")
    found_amount: Amount = Field(alias="foundAmount")
    put_in_quarantine_amount: Amount = Field(alias="putInQuarantineAmount")
    release_from_quarantine_amount: Amount = Field(alias="releaseFromQuarantineAmount")


class StockAdjustment(Record):
    adjustment_id: Text = Field(None, alias="id")
    transaction_number: Key = Field(alias="transactionNumber")
    transaction_type: Text = Field(None, alias="transactionType")
    completed_at: RequiredInstant = Field(alias="completedAt")
    tag: Text = Field(None, alias="tag")
    line_items: list[AdjustmentLine] | None = Field(None, alias="lineItems")


class Stock(Record):
    sku: Key = Field(alias="sku")
    name: Text = Field(None, alias="name")
    updated_at: Instant = Field(None, alias="updatedAt")
    total_stock_amount: StockCount = Field(None, alias="totalStockAmount")
    available_stock: StockCount = Field(None, alias="availableStock")
    reserved_stock: StockCount = Field(None, alias="reservedStock")
    received_item_amount: StockCount = Field(None, alias="receivedItemAmount")
    damaged_item_amount: StockCount = Field(None, alias="damagedItemAmount")
    expired_amount: StockCount = Field(None, alias="expiredAmount")
    lost_item_amount: StockCount = Field(None, alias="lostItemAmount")
