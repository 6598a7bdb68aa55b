"""ISO 4217 currencies and their minor units (exponents), for provider amounts in minor units.

Which codes exist comes from ``pycountry`` (its ISO 4217 data, maintained upstream). The exponent
is not in that data, so the exceptions to two decimals are the small table below, copied from
ISO 4217's "minor unit" column; a code whose minor unit is "N.A." there (precious metals, funds,
test and no-currency codes: XAU, XDR, XTS, XXX...) is not a payable currency and is rejected.
A provider refund's amount is ``amount / 10 ** exponent`` (reconciliation.md).
"""
from __future__ import annotations

from decimal import Decimal

import pycountry

ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
                          "VND", "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
FOUR_DECIMAL = frozenset({"CLF", "UYW"})
NO_MINOR_UNIT = frozenset({"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA",
                           "XXX"})


def exponent(code: str) -> int | None:
    """The number of decimals of an ISO 4217 currency (any case); None when it is not a payable one."""
    code = (code or "").strip().upper()
    if len(code) != 3 or code in NO_MINOR_UNIT or pycountry.currencies.get(alpha_3=code) is None:
        return None
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    if code in FOUR_DECIMAL:
        return 4
    return 2


def from_minor_units(amount: int, code: str) -> Decimal:
    """Exact: 1999 EUR -> 19.99, 1999 JPY -> 1999, 1999 KWD -> 1.999."""
    exp = exponent(code)
    if exp is None:
        raise ValueError(f"unknown currency {code!r}")
    return Decimal(amount).scaleb(-exp)
