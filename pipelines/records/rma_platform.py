"""Record model of the GraphQL RMA platform's orders (sources.md section 5.1): the only place a
platform RMA node is validated.

Only the fields the reconciliation reads are named (and so only these reach a reject's payload):
ids and references, the four statuses and their history, lines, linked orders, shipments and
financial resolutions. Contacts (sender, delivery, billing: customer data) and comments are
never queried nor kept. Enums are the seed's; an unknown value is a reject of the node, not of
the page. Instants are compared as instants (any offset, stored as naive UTC).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field

from pipelines.records.base import Record
from pipelines.records.values import Count, Key, RequiredInstant, StrippedText, Text, decimal, required

PROCESSING = ("NEW", "REQUESTED", "ACCEPTED", "PROCESSING", "REJECTED", "CANCELED", "COMPLETE", "ON_HOLD",
              "ANOMALY", "DELETED")
DELIVERY = ("PENDING", "HANDLED", "PROCESSING", "DELIVERING", "DELIVERED", "DELIVERED_TO_SENDER", "CANCELED",
            "ERROR")
FINANCIAL = ("PENDING", "REFUNDED", "PARTIALLY_REFUNDED", "REFUND_REJECTED", "CANCELED", "NONE", "EXECUTION_ERROR")
FULFILLMENT = ("PENDING", "IN_PROGRESS", "ERROR", "CANCELED", "COMPLETE")
RESOLUTIONS = ("NONE", "VOUCHER", "REPLACE", "REFUND")
DIMENSIONS = ("PROCESSING", "DELIVERY", "FINANCIAL", "FULFILLMENT")
STATUSES_BY_DIMENSION = {"PROCESSING": PROCESSING, "DELIVERY": DELIVERY, "FINANCIAL": FINANCIAL,
                         "FULFILLMENT": FULFILLMENT}
LINE_STATES = ("FULFILLED", "PARTIALLY_FULFILLED", "PENDING")


def _one_of(values: tuple[str, ...]):
    def check(value: str | None) -> str | None:
        if value is not None and value not in values:
            raise ValueError(f"is not one of {', '.join(values)}: {value[:30]!r}")
        return value
    return AfterValidator(check)


def _positive(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"is not a positive quantity: {value}")
    return value


# a GraphQL Float read as the decimal it was written as (JSON 12.3 -> Decimal('12.3'), via its repr)
Money = decimal(18, 4, exact=False)


class RmaOrderLine(Record):
    id: Key = Field(alias="id")
    sku: Key = Field(alias="sku")
    quantity: Annotated[required(Count), AfterValidator(_positive)] = Field(alias="quantity")
    line_state: Annotated[required(Text), _one_of(LINE_STATES)] = Field(alias="lineState")
    order_line_reference: StrippedText = Field(None, alias="orderLineReference")


class LinkedOrder(Record):
    order_reference: Key = Field(alias="orderReference")


class Shipment(Record):
    tracking_number: StrippedText = Field(None, alias="trackingNumber")
    carrier: Text = Field(None, alias="carrier")
    delivery_status: Annotated[required(Text), _one_of(DELIVERY)] = Field(alias="deliveryStatus")


class FinancialResolution(Record):
    id: Key = Field(alias="id")
    type: Annotated[required(Text), _one_of(RESOLUTIONS)] = Field(alias="type")
    amount: required(Money) = Field(alias="amount")
    currency: Key = Field(alias="currency")
    status: Annotated[required(Text), _one_of(FINANCIAL)] = Field(alias="status")


class StatusChange(Record):
    dimension: Annotated[required(Text), _one_of(DIMENSIONS)] = Field(alias="dimension")
    status: Key = Field(alias="status")
    at: RequiredInstant = Field(alias="at")


class RmaOrder(Record):
    id: Key = Field(alias="id")
    return_reference: Key = Field(alias="returnReference")
    external_reference: Text = Field(None, alias="externalReference")
    received_at: RequiredInstant = Field(alias="receivedAt")
    issued_at: RequiredInstant = Field(alias="issuedAt")
    updated_at: RequiredInstant = Field(alias="updatedAt")
    expected_resolution: Annotated[required(Text), _one_of(RESOLUTIONS)] = Field(alias="expectedResolution")
    processing_status: Annotated[required(Text), _one_of(PROCESSING)] = Field(alias="processingStatus")
    delivery_status: Annotated[Text, _one_of(DELIVERY)] = Field(None, alias="deliveryStatus")
    financial_status: Annotated[Text, _one_of(FINANCIAL)] = Field(None, alias="financialStatus")
    fulfillment_status: Annotated[Text, _one_of(FULFILLMENT)] = Field(None, alias="fulfillmentStatus")
    currency: Text = Field(None, alias="currency")
    lines: list[RmaOrderLine] = Field(alias="lines", min_length=1)
    linked_orders: list[LinkedOrder] | None = Field(None, alias="linkedOrders")
    shipments: list[Shipment] | None = Field(None, alias="shipments")
    financial_resolutions: list[FinancialResolution] | None = Field(None, alias="financialResolutions")
    status_history: list[StatusChange] = Field(alias="statusHistory")

    @property
    def order_reference(self) -> str | None:
        """The first linked order (sources.md 5.1)."""
        return self.linked_orders[0].order_reference if self.linked_orders else None

    @property
    def tracking_number(self) -> str | None:
        """That of the latest shipment (the last one listed) that has one."""
        for shipment in reversed(self.shipments or []):
            if shipment.tracking_number:
                return shipment.tracking_number
        return None

    def status_at(self, dimension: str, t: datetime) -> str | None:
        """The latest status of a dimension at or before T (ties: the later entry in the list)."""
        best = None
        for change in self.status_history:
            if change.dimension == dimension and change.at <= t and (best is None or change.at >= best.at):
                best = change
        return best.status if best else None

    def refunded_amount(self) -> Decimal:
        """What the platform's financial resolutions say was refunded (REFUND resolutions REFUNDED or
        PARTIALLY_REFUNDED)."""
        return sum((r.amount for r in self.financial_resolutions or ()
                    if r.type == "REFUND" and r.status in ("REFUNDED", "PARTIALLY_REFUNDED")), Decimal(0))


ACTION_OF_RESOLUTION = {"REFUND": "Refunded", "VOUCHER": "Credit Issued", "REPLACE": "Replacement Sent", "NONE": None}
