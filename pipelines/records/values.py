"""Value types shared by every source's record models: one reading of each kind of value.

Every type is an ``Annotated`` type with a plain validator, so a value is read the same way
whichever source it comes from and the reason of a bad value is the same sentence everywhere:

- ``Text`` (and ``text(strip=..., blank_is_null=...)``): a string, or a number written as
  text (JSON ``12`` reads as ``"12"``, an integral ``Decimal`` as its integer); bytes are
  decoded as UTF-8. ``None`` stays ``None``; a boolean, an object or a list is not text.
- ``integer(bits, strict)``: an integer within a signed ``bits``-bit range. Strict (JSON
  APIs): only a JSON integer. Lax (database columns): also an integral float/Decimal or a
  string of digits.
- ``decimal(precision, scale, exact)``: a number as an exact ``Decimal``: strings, integers,
  Decimals, floats by their shortest repr. ``exact`` (money from messages): more decimal places
  than ``scale`` is an error, never rounded. Not exact (database DECIMAL columns): rounded half
  up to ``scale``. Out of ``DECIMAL(precision, scale)`` range or not finite is an error.
- ``Instant``: an ISO-8601 timestamp (or a ``datetime``/``date`` from a driver) as a naive
  UTC ``datetime``. An aware value is converted to UTC; a naive one is a local time of the
  zone in the validation context (``{"zone": tzinfo}``; default UTC), ``fold=0``. MySQL zero
  dates (``0000-00-00...``, a zero month or day) and blank strings read as ``None``.
- ``Day``: a DATE taken as written.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone, tzinfo
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, ValidationInfo

_ZERO_DATE_RE = re.compile(r"^\d{4}-(?:00-\d{2}|\d{2}-00)")  # 0000-00-00, 2024-00-10, 2024-05-00
_DIGITS_RE = re.compile(r"[+-]?\d+")
_EXACT = Context(prec=80)  # wide enough for any DECIMAL(38, s) value: nothing is rounded


def json_type(value: Any) -> str:
    """The JSON type a value was given as, for a reason ("a JSON object")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, (list, tuple)) else type(value).__name__


def _shown(value: Any) -> str:
    return repr(value if not isinstance(value, str) else value[:40])


def _decoded(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("is not valid UTF-8 text") from None
    return value


# --------------------------------------------------------------------------- text

def read_text(value: Any, *, strip: bool = False, blank_is_null: bool = True) -> str | None:
    value = _decoded(value)
    if value is None:
        return None
    if isinstance(value, str):
        out = value.strip() if strip else value
        return None if blank_is_null and out.strip() == "" else out
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError(f"is not text (a JSON {json_type(value)})")
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    return str(value)


def text(*, strip: bool = False, blank_is_null: bool = True) -> Any:
    return Annotated[str | None, PlainValidator(
        lambda v: read_text(v, strip=strip, blank_is_null=blank_is_null))]


Text = text()                      # JSON APIs: "" is no value
StrippedText = text(strip=True)    # messages typed by people: surrounding spaces are not data
ColumnText = text(blank_is_null=False)  # database columns: kept as stored


# --------------------------------------------------------------------------- integers

def read_integer(value: Any, *, bits: int = 64, strict: bool = False) -> int | None:
    value = _decoded(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"is not an integer: {value!r}")
    if isinstance(value, int):
        result = value
    elif strict:
        raise ValueError(f"is not an integer: {_shown(value)}")
    elif isinstance(value, (float, Decimal)):
        try:
            integral = value == int(value)
        except (ValueError, OverflowError, InvalidOperation):
            integral = False
        if not integral:
            raise ValueError(f"is not an integer: {value!r}")
        result = int(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped == "":
            return None
        if not _DIGITS_RE.fullmatch(stripped):
            raise ValueError(f"is not an integer: {_shown(value)}")
        result = int(stripped)
    else:
        raise ValueError(f"is not an integer: {_shown(value)}")
    limit = 2 ** (bits - 1)
    if not -limit <= result < limit:
        raise ValueError(f"is out of range: {result}")
    return result


def integer(bits: int = 64, *, strict: bool = False) -> Any:
    return Annotated[int | None, PlainValidator(lambda v: read_integer(v, bits=bits, strict=strict))]


Count = integer(64, strict=True)   # a count in a JSON API: a JSON integer, nothing else


# --------------------------------------------------------------------------- decimals

def read_decimal(value: Any, *, precision: int, scale: int, exact: bool) -> Decimal | None:
    value = _decoded(value)
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"is not a number (a JSON {json_type(value)})")
    try:
        number = (Decimal(repr(value)) if isinstance(value, float)
                  else Decimal(value.strip()) if isinstance(value, str) else Decimal(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"is not a number: {_shown(value)}") from None
    if not number.is_finite():
        raise ValueError(f"is not a finite number: {_shown(value)}")
    bound = Decimal(10) ** (precision - scale)
    # range first: quantizing a huge number past the context's precision raises InvalidOperation
    if number.copy_abs() >= bound:
        raise ValueError(f"is out of range for DECIMAL({precision},{scale}): {_shown(value)}")
    if exact:
        if number.normalize(_EXACT).as_tuple().exponent < -scale:  # 1.500 has 1 decimal place
            raise ValueError(f"has more than {scale} decimal places and cannot be kept exactly: "
                             f"{_shown(value)}")
        return number.quantize(Decimal(1).scaleb(-scale), context=_EXACT)
    number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP, context=_EXACT)
    if number.copy_abs() >= bound:  # 9999.99995 rounds up past the range
        raise ValueError(f"is out of range for DECIMAL({precision},{scale}): {_shown(value)}")
    return number


def decimal(precision: int, scale: int, *, exact: bool = True) -> Any:
    return Annotated[Decimal | None, PlainValidator(
        lambda v: read_decimal(v, precision=precision, scale=scale, exact=exact))]


# --------------------------------------------------------------------------- instants and dates

def read_instant(value: Any, zone: tzinfo | None = None) -> datetime | None:
    """See the module docstring: -> naive UTC, or None for no value / a zero date."""
    value = _decoded(value)
    if value is None:
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        stripped = value.strip()
        if stripped == "" or _ZERO_DATE_RE.match(stripped):
            return None
        try:
            result = datetime.fromisoformat(stripped.replace("Z", "+00:00") if stripped.endswith("Z")
                                            else stripped)
        except ValueError:
            raise ValueError(f"is not an ISO-8601 timestamp: {_shown(value)}") from None
    else:
        raise ValueError(f"is not an ISO-8601 timestamp (a JSON {json_type(value)})")
    if result.tzinfo is None:
        if zone is None or zone is timezone.utc:
            return result
        result = result.replace(tzinfo=zone, fold=0)
    try:
        return result.astimezone(timezone.utc).replace(tzinfo=None)
    except (OverflowError, ValueError):
        raise ValueError(f"is out of range in UTC: {_shown(value)}") from None


def _instant(value: Any, info: ValidationInfo) -> datetime | None:
    context = info.context or {}
    return read_instant(value, context.get("zone"))


Instant = Annotated[datetime | None, PlainValidator(_instant)]


def read_day(value: Any) -> date | None:
    result = read_instant(value)
    return None if result is None else result.date()


Day = Annotated[date | None, PlainValidator(read_day)]


# --------------------------------------------------------------------------- required values

def _present(value: Any) -> Any:
    if value is None:
        raise ValueError("is missing")
    return value


def required(value_type: Any) -> Any:
    """``value_type`` that must hold a value: null, "" (for text) or a zero date is "is missing"."""
    return Annotated[value_type, AfterValidator(_present)]


Key = required(Text)               # a record's identifier in a JSON API
RequiredInstant = required(Instant)
