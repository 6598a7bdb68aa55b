"""The payment provider connector (pipelines/resources/payments.py, the official ``stripe``
library) against the Stripe-compatible emulator (pipelines/demo/payments_emulator.py) over real
HTTP: every page read once, the ``created`` window respected, 429 and 5xx storms survived by the
library's retries, bad objects rejected one by one, the key never in logs or exceptions."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from pipelines.demo.emulator import WmsEmulator, WmsWorld
from pipelines.demo.payments_emulator import PaymentsApi
from pipelines.errors import SourceUnavailable
from pipelines.resources.payments import PaymentsClient, unix

KEY = "sk_test_emulated_5f0c1d2e9a"
T0 = datetime(2026, 3, 1)


def refund(i: int, **over) -> dict:
    obj = {"id": f"re_{i:05d}", "object": "refund", "amount": 1000 + i, "currency": "eur",
           "created": unix(T0 + timedelta(hours=i)), "status": "succeeded", "payment_intent": f"pi_{i}",
           "charge": None, "reason": "requested_by_customer", "failure_reason": None,
           "metadata": {"order_id": str(100 + i), "credit_note_number": f"CN-{i:06d}", "customer_email": "x@y.z"}}
    obj.update(over)
    return obj


@pytest.fixture
def provider():
    api = PaymentsApi([refund(i) for i in range(250)], key=KEY)
    with WmsEmulator(WmsWorld(), payments=api) as emu:
        yield api, emu.base_url


def test_every_page_is_read_once_and_every_refund_kept_exactly(provider):
    api, base = provider
    out = PaymentsClient(base, KEY).read(None, None)
    assert [r.id for r in out.refunds] == [f"re_{i:05d}" for i in range(249, -1, -1)]  # newest first
    assert out.pages == 3 and len(api.pages) == 3 and api.requests == 3
    afters = [p["starting_after"] for p in api.pages]
    assert afters == [None, api.pages[0]["ids"][-1], api.pages[1]["ids"][-1]]
    assert all(p["limit"] == 100 for p in api.pages)
    first = out.refunds[-1]
    assert first.amount_decimal == Decimal("10.00") and first.currency == "EUR" and first.created == T0
    assert first.order_id == "100" and first.credit_note_number == "CN-000000" and out.rejects == []


def test_the_created_window_is_asked_and_respected(provider):
    api, base = provider
    gte, lt = T0 + timedelta(hours=10), T0 + timedelta(hours=130)
    out = PaymentsClient(base, KEY).read(gte, lt)
    assert sorted(r.id for r in out.refunds) == [f"re_{i:05d}" for i in range(10, 130)]
    assert all(p.get("gte") == unix(gte) and p.get("lt") == unix(lt) for p in api.pages)


def test_a_429_and_5xx_storm_is_survived_by_the_librarys_retries(provider):
    api, base = provider
    api.fail_next(2, 429)
    api.fail_next(2, 503)
    api.fail_next(1, 500)
    out = PaymentsClient(base, KEY).read(None, None)
    assert len(out.refunds) == 250 and api.requests == 3 + 5


def test_retries_exhausted_or_a_refused_key_fail_the_source_in_one_line_without_the_key(provider, caplog, capsys):
    import stripe

    api, base = provider
    caplog.set_level(logging.DEBUG)
    old_log, stripe.log = stripe.log, "debug"   # the library's most talkative logging
    try:
        api.fail_next(10, 503)
        with pytest.raises(SourceUnavailable) as failed:
            PaymentsClient(base, KEY, max_network_retries=2).read(None, None)
        assert "HTTP 503" in str(failed.value) and "\n" not in str(failed.value)
        with pytest.raises(SourceUnavailable, match=r"refused the API key \(401\)") as refused:
            PaymentsClient(base, "sk_test_wrong_key_77").read(None, None)
    finally:
        stripe.log = old_log
    captured = capsys.readouterr()
    for text in (str(failed.value), str(refused.value), repr(failed.value), caplog.text, captured.out, captured.err):
        assert KEY not in text and "sk_test_wrong_key_77" not in text
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


def test_bad_objects_are_rejected_one_by_one_and_the_others_kept(provider):
    api, base = provider
    api.inject([
        refund(900, amount=None),                   # missing amount
        refund(901, currency="zzz"),                # unknown currency
        refund(902, amount=12.5),                   # not an integer of minor units
        refund(903, currency="jpy", amount=1999),   # zero-decimal: 1999 yen
        refund(904, currency="kwd", amount=1999),   # three decimals: 1.999 dinar
        refund(905, metadata={}),                   # no order id nor credit note: kept, unmatched later
    ])
    out = PaymentsClient(base, KEY).read(None, None)
    reasons = {r["record_key"]: r["reason"] for r in out.rejects}
    assert reasons == {"re_00900": "amount is missing",
                       "re_00901": "currency is not an ISO 4217 currency with a minor unit: 'zzz'",
                       "re_00902": "amount is not an integer: 12.5"}
    assert all("x@y.z" not in r["payload"] for r in out.rejects), "metadata beyond the two keys is never kept"
    kept = {r.id: r for r in out.refunds}
    assert len(kept) == 253
    assert kept["re_00903"].amount_decimal == Decimal("1999") and kept["re_00904"].amount_decimal == Decimal("1.999")
    assert kept["re_00905"].order_id is None and kept["re_00905"].credit_note_number is None


def test_limit_over_100_is_refused_like_stripe(provider):
    import requests

    _, base = provider
    answer = requests.get(f"{base}/v1/refunds", params={"limit": 101}, headers={"Authorization": f"Bearer {KEY}"},
                          timeout=5)
    assert answer.status_code == 400 and answer.json()["error"]["type"] == "invalid_request_error"
    assert requests.get(f"{base}/v1/refunds", timeout=5).status_code == 401
