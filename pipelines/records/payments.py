"""Record model of the payment provider's refunds (sources.md section 4, Stripe-style): the only
place a provider refund is validated.

- ``id`` (text, required), ``amount`` (a JSON integer of minor units, not negative, nothing else:
  ``12.5``, ``"1250"`` or ``true`` are errors), ``currency`` (an ISO 4217 code with a minor unit, any case:
  stored upper-cased), ``created`` (Unix seconds, a JSON integer: naive UTC), ``status`` (one of
  the provider's five) are required;
- ``payment_intent``, ``charge``, ``reason``, ``failure_reason`` optional text;
- ``metadata``: a string map; only ``order_id`` and ``credit_note_number`` are read (the shop's
  integration sets them), every other key (which may hold customer data) is never read or kept.

``amount_decimal`` is the exact amount in the currency (``amount / 10^exponent``,
pipelines/records/currencies.py).
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated

import pydantic
from pydantic import AfterValidator

from pipelines.records.base import Record
from pipelines.records.currencies import exponent, from_minor_units
from pipelines.records.values import Count, Key, StrippedText, Text, required

STATUSES = ("pending", "requires_action", "succeeded", "failed", "canceled")


def _currency(value: str | None) -> str | None:
    if value is not None and exponent(value) is None:
        raise ValueError(f"is not an ISO 4217 currency with a minor unit: {value[:20]!r}")
    return None if value is None else value.strip().upper()


def _not_negative(value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ValueError(f"is negative: {value}")
    return value


def _status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise ValueError(f"is not one of {', '.join(STATUSES)}: {value[:30]!r}")
    return value


def _created(value: int | None) -> datetime | None:
    if value is None:
        return None
    if value < 0:
        raise ValueError(f"is not a Unix time in seconds: {value}")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"is not a Unix time in seconds: {value}") from None


class RefundMetadata(Record):
    """The two keys the shop's integration sets; any other key is never read."""
    order_id: StrippedText = None
    credit_note_number: StrippedText = None


Currency = Annotated[required(Text), AfterValidator(_currency)]
Status = Annotated[required(Text), AfterValidator(_status)]
Created = Annotated[required(Count), AfterValidator(_created)]
Amount = Annotated[required(Count), AfterValidator(_not_negative)]


class ProviderRefund(Record):
    id: Key
    amount: Amount
    currency: Currency
    created: Created
    status: Status
    payment_intent: Text = None
    charge: Text = None
    reason: Text = None
    failure_reason: Text = None
    metadata: RefundMetadata = pydantic.Field(default_factory=RefundMetadata)

    @property
    def amount_decimal(self) -> Decimal:
        return from_minor_units(self.amount, self.currency)

    @property
    def order_id(self) -> str | None:
        return self.metadata.order_id

    @property
    def credit_note_number(self) -> str | None:
        return self.metadata.credit_note_number
