"""Record models of the OMS refund message archive (sources.md section 3): the only place a
message of the archive is validated.

- ``Message``: any JSON-RPC message of the stream: a JSON object whose ``method`` is a string.
- ``RefundMessage``: a ``magento.postsales.refund_management.updated`` message: ``id`` (text,
  optional), ``method`` and ``params.refund``, a ``Refund``:

  - ``credit_note_number``, ``order_id`` (text, a JSON number read as its digits) and
    ``credit_note_date`` (ISO-8601, as naive UTC) are required; ``store_id``,
    ``sales_channel_id``, ``rma``, ``refund_type``, ``refund_reason`` are optional text
    (surrounding spaces dropped, blank is no value);
  - ``status``: ``code`` and ``date`` (an ISO-8601 timestamp), or absent;
  - ``currency``: a 3-letter ISO 4217 code (``EUR``), or absent;
  - ``lines``: a non-empty list of ``RefundLine``: ``order_item_id`` required, ``order_line``,
    ``reason`` and ``payments`` (absent is none), each ``Payment`` with ``details.cost_gross``,
    ``cost_net`` and ``cost_vat`` required and ``status.code``.

- Amounts are exact ``DECIMAL(38,10)`` values (``decimal(38, 10)``, exact): a decimal string or
  a JSON number; more than 10 decimal places (trailing zeros do not count), ``abs >= 10^28``,
  not a number or not finite is an error, never rounded. Validate what
  ``json.loads(line, parse_float=Decimal)`` gives, not the raw line with ``model_validate_json``:
  that reads JSON numbers as floats, and a float cannot hold every decimal exactly.
- Rules that span a refund (the model validator of ``Refund``, so their reasons are the
  model's too): per order item, ``refunded_gross/net/vat`` sum the payments whose
  ``status.code`` is ``REFUNDED`` (any case), ``total_gross`` sums every payment, a credit note
  listing the same ``order_item_id`` twice is one line with the sums (the first ``order_line``
  and ``reason`` given, the payments counted), and a sum out of ``DECIMAL(38,10)`` range is an
  error. The sums are ``Refund.sums()``: exact integer counts of ``10^-10`` units (the unscaled
  value of a ``DECIMAL(38,10)``: exact and compact; no ``Decimal`` context can round them).
- Not in any model, so never read and never in a reject payload (``base.payload`` keeps only
  the fields named here): ``user`` (a staff member's name), ``reason_description`` and the other
  free-text descriptions, ``status.name``/``reason_*``, ``vat_rate``/``vat_detail``,
  ``custom_attributes``, ``jsonrpc``.

``references(message)`` reads the credit note number and the order reference of any message,
valid or not, for the grain columns of a reject.

Value types of this source only (``values`` has no equivalent): ``MethodName`` (a JSON string,
nothing else), ``Currency``, ``NonEmptyLines``, and ``Amount``: ``required(decimal(38, 10))``
exact, with a fast path for plain decimal strings (see ``_amount``).
"""
from __future__ import annotations

import re
from decimal import Context, Decimal
from typing import Annotated, Any, NamedTuple

import pydantic
from pydantic import AfterValidator, PlainValidator

from pipelines.records.base import Record
from pipelines.records.values import (Instant, RequiredInstant, StrippedText, json_type, read_decimal,
                                      read_text, required)

SCALE = 10                           # DECIMAL(38,10): decimal places kept
MAX_UNITS = 10 ** 38                 # a sum, in 10^-10 units, must stay below this: abs < 10^28
_EXACT = Context(prec=80)            # wide enough for any DECIMAL(38,10) value: nothing is rounded
REFUNDED = "REFUNDED"


# --------------------------------------------------------------------------- value types of this source

def _method(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"is not a JSON string (a JSON {json_type(value)})")


MethodName = Annotated[str | None, PlainValidator(_method)]


def _currency(value: str | None) -> str | None:
    if value is not None and not (len(value) == 3 and value.isascii() and value.isalpha() and value.isupper()):
        raise ValueError(f"is not a 3-letter ISO 4217 currency code: {value[:20]!r}")
    return value


Currency = Annotated[StrippedText, AfterValidator(_currency)]


_PLAIN_AMOUNT_RE = re.compile(r"-?[0-9]{1,28}(?:\.[0-9]{1,10})?")  # within DECIMAL(38,10) as written
_TEN_PLACES = Decimal(1).scaleb(-SCALE)


def _amount(value: Any) -> Decimal:
    """A required ``decimal(38, 10)`` exact amount, read by ``values.read_decimal``.

    One addition, giving exactly what ``read_decimal`` means: a fast path for the common case, a
    plain decimal string of at most 28 integer digits and 10 decimal places (in range and exact by
    its form: ``read_decimal`` returns it quantized to 10 places, and so does this, ~10x faster;
    the three amounts of every payment made validation twice as slow otherwise).
    """
    if type(value) is str and _PLAIN_AMOUNT_RE.fullmatch(value):
        return Decimal(value).quantize(_TEN_PLACES, context=_EXACT)
    amount = read_decimal(value, precision=38, scale=SCALE, exact=True)
    if amount is None:
        raise ValueError("is missing")
    return amount


Amount = Annotated[Decimal, PlainValidator(_amount)]  # required(decimal(38, 10, exact=True)), see _amount
Reference = required(StrippedText)


# --------------------------------------------------------------------------- models

class PaymentDetails(Record):
    cost_gross: Amount
    cost_net: Amount
    cost_vat: Amount


class PaymentStatus(Record):
    code: StrippedText = None


class Payment(Record):
    details: PaymentDetails
    status: PaymentStatus | None = None


class RefundLine(Record):
    order_item_id: Reference
    order_line: StrippedText = None
    reason: StrippedText = None
    payments: list[Payment] | None = None


def _lines(value: list[RefundLine] | None) -> list[RefundLine]:
    if value is None:
        raise ValueError("is missing")
    if not value:
        raise ValueError("is empty: a credit note has at least one line")
    return value


NonEmptyLines = Annotated[list[RefundLine] | None, AfterValidator(_lines)]


class RefundStatus(Record):
    code: StrippedText = None
    date: Instant = None


class LineSums(NamedTuple):
    """One order item of a credit note: amounts in 10^-10 units."""

    order_line: str | None
    reason: str | None
    refunded_gross: int
    refunded_net: int
    refunded_vat: int
    total_gross: int
    payment_count: int


def _units(amount: Decimal) -> int:
    """An exact DECIMAL(38,10) value -> its integer count of 10^-10 units."""
    return int(amount.scaleb(SCALE, _EXACT))


class Refund(Record):
    credit_note_number: Reference
    order_id: Reference
    store_id: StrippedText = None
    sales_channel_id: StrippedText = None
    credit_note_date: RequiredInstant
    rma: StrippedText = None
    refund_type: StrippedText = None
    refund_reason: StrippedText = None
    status: RefundStatus | None = None
    currency: Currency = None
    lines: NonEmptyLines

    _sums: dict[str, LineSums] = pydantic.PrivateAttr()

    @pydantic.model_validator(mode="after")
    def _sum_lines(self) -> Refund:
        sums: dict[str, list[Any]] = {}
        for line in self.lines:
            gross = net = vat = total = 0
            payments = line.payments or ()
            for payment in payments:
                details = payment.details
                g = _units(details.cost_gross)
                total += g
                status = payment.status
                code = status.code if status is not None else None
                if code is not None and code.upper() == REFUNDED:
                    gross += g
                    net += _units(details.cost_net)
                    vat += _units(details.cost_vat)
            kept = sums.get(line.order_item_id)
            if kept is None:
                sums[line.order_item_id] = [line.order_line, line.reason, gross, net, vat, total, len(payments)]
            else:  # the same order item twice in one credit note: one line, summed
                if kept[0] is None:
                    kept[0] = line.order_line
                if kept[1] is None:
                    kept[1] = line.reason
                kept[2] += gross
                kept[3] += net
                kept[4] += vat
                kept[5] += total
                kept[6] += len(payments)
        out_of_range = [item for item, (_, _, gross, net, vat, total, _) in sums.items()
                        if max(abs(gross), abs(net), abs(vat), abs(total)) >= MAX_UNITS]
        if out_of_range:
            raise ValueError("has a sum of amounts out of range (abs >= 10^28, DECIMAL(38,10)) for order_item_id "
                             + ", ".join(out_of_range))
        self._sums = {item: LineSums._make(values) for item, values in sums.items()}
        return self

    def sums(self) -> dict[str, LineSums]:
        """Order item -> its ``LineSums``, in the order the items first appear."""
        return self._sums


class Message(Record):
    id: StrippedText = None
    method: required(MethodName)


class RefundParams(Record):
    refund: Refund


class RefundMessage(Message):
    params: RefundParams


def references(message: Any) -> tuple[str | None, str | None]:
    """(credit note number, order reference) of a message, each when it can be read as text."""
    params = message.get("params") if isinstance(message, dict) else None
    refund = params.get("refund") if isinstance(params, dict) else None
    if not isinstance(refund, dict):
        return None, None
    return _readable(refund.get("credit_note_number")), _readable(refund.get("order_id"))


def _readable(value: Any) -> str | None:
    try:
        return read_text(value, strip=True)
    except ValueError:
        return None
