"""The payment provider's source asset (assets/sources/payments.py) materialised by Dagster with real
resources against the Stripe-compatible emulator over HTTP, into a DuckDB file on tmp_path: the
incremental window (latest created minus the overlap, widened to the status re-read window),
versions written only when a refund is new or changed, rejects with their grain and without
customer data, a disabled source, a refused key failing the step in one line."""
from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import dagster as dg
import pytest
from conftest import query as warehouse_query

from pipelines.demo.emulator import WmsEmulator, WmsWorld
from pipelines.demo.payments_emulator import PaymentsApi
from pipelines.partitions import as_of
from pipelines.resources.payments import unix

KEY = "sk_test_ingestion_2b7d"
D1 = date(2026, 3, 20)
T1 = as_of(D1)
D2 = D1 + timedelta(days=1)
T2 = as_of(D2)


def obj(rid: str, created, status: str = "succeeded", amount=1250, **meta) -> dict:
    return {"id": rid, "object": "refund", "amount": amount, "currency": "eur", "created": unix(created),
            "status": status, "payment_intent": None, "charge": None, "reason": None, "failure_reason": None,
            "metadata": {"order_id": "42", "credit_note_number": f"CN-{rid}", **meta}}


@pytest.fixture
def provider():
    api = PaymentsApi([obj("re_old", T1 - timedelta(days=20), "pending"),
                       obj("re_mid", T1 - timedelta(days=10), "pending"),
                       obj("re_new", T1 - timedelta(hours=1)),
                       obj("re_after", T1 + timedelta(seconds=1))], key=KEY)
    with WmsEmulator(WmsWorld(), payments=api) as emu:
        yield api, emu.base_url


def materialize(tmp_path, base_url: str, d: date, key: str = KEY, raise_on_error: bool = True):
    from assets.sources.payments import payment_refunds
    from pipelines.resources.config import ReconConfigResource
    from pipelines.resources.payments import PaymentsResource
    from pipelines.resources.warehouse import WarehouseResource
    from pipelines.settings import DEFAULT_CONFIG_PATH

    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                 "payments": PaymentsResource(api_base=base_url, api_key=key),
                 "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH))}
    return dg.materialize([payment_refunds], resources=resources, partition_key=d.isoformat(),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def query(tmp_path, sql: str, params=None):
    """The warehouse the materialisation wrote (conftest.query, read from tmp_path)."""
    return warehouse_query(SimpleNamespace(warehouse=tmp_path / "warehouse.duckdb"), sql, params or {})


def metadata(result) -> dict:
    (mat,) = result.asset_materializations_for_node("raw__payment_refunds")
    return {k: v.value for k, v in mat.metadata.items()}


def test_incremental_window_and_versions_only_when_changed(tmp_path, provider):
    api, base = provider
    first = metadata(materialize(tmp_path, base, D1))
    # first run: everything created by T (the initial lookback), nothing after T
    assert api.pages[-1]["gte"] == unix(T1 - timedelta(days=3650)) and api.pages[-1]["lt"] == unix(T1) + 1
    assert first["refunds_read"] == 3 and first["versions_written"] == 3 and first["dagster/row_count"] == 3
    assert query(tmp_path, "SELECT refund_id FROM raw.payment_refunds ORDER BY 1") == [
        ("re_mid",), ("re_new",), ("re_old",)]

    # next day: the window starts at the status re-read window (earlier than latest created - 24 h)
    second = metadata(materialize(tmp_path, base, D2))
    assert api.pages[-1]["gte"] == unix(T2 - timedelta(days=14)) and api.pages[-1]["lt"] == unix(T2) + 1
    assert second["refunds_read"] == 3  # re_mid, re_new, re_after; re_old is outside the window
    assert second["versions_written"] == 1  # only re_after is new: unchanged refunds write nothing
    assert query(tmp_path, "SELECT refund_id FROM raw.payment_refunds WHERE business_date = $d", {"d": D2}) == [
        ("re_after",)]

    # a status that changed within the re-read window is a new version; the earlier date keeps its own
    for o in api.refunds:
        if o["id"] in ("re_mid", "re_old"):
            o["status"] = "succeeded"
    rerun = metadata(materialize(tmp_path, base, D2))
    assert rerun["versions_written"] == 2  # re_after again (the date is rewritten) and re_mid's new status
    status_at = "SELECT refund_id, status FROM raw.payment_refunds_at($d) ORDER BY 1"
    assert query(tmp_path, status_at, {"d": D1}) == [("re_mid", "pending"), ("re_new", "succeeded"),
                                                      ("re_old", "pending")]
    assert query(tmp_path, status_at, {"d": D2}) == [("re_after", "succeeded"), ("re_mid", "succeeded"),
                                                      ("re_new", "succeeded"), ("re_old", "pending")]
    # the same read again changes nothing (a rerun gives the same tables)
    before = query(tmp_path, "SELECT * EXCLUDE (fetched_at) FROM raw.payment_refunds ORDER BY ALL")
    materialize(tmp_path, base, D2)
    assert query(tmp_path, "SELECT * EXCLUDE (fetched_at) FROM raw.payment_refunds ORDER BY ALL") == before
    assert query(tmp_path, "SELECT business_date, refunds_read FROM state.payment_polls ORDER BY 1") == [
        (D1, 3), (D2, 3)]


def test_the_poll_overlaps_the_latest_created_when_that_starts_earlier(tmp_path, provider):
    api, base = provider
    materialize(tmp_path, base, D1)
    later = D1 + timedelta(days=30)  # 30 days on: latest created - 24 h is before T - 14 days
    materialize(tmp_path, base, later)
    assert api.pages[-1]["gte"] == unix(T1 - timedelta(hours=1) - timedelta(hours=24))


def test_bad_objects_become_rejects_with_their_grain_and_no_customer_data(tmp_path, provider):
    api, base = provider
    api.inject([
        {**obj("re_noamount", T1 - timedelta(days=1)), "amount": None},
        {**obj("re_ccy", T1 - timedelta(days=1)), "currency": "xxx"},
        {**obj("re_float", T1 - timedelta(days=1), customer_email="anna@example.com"), "amount": 12.5},
    ])
    meta = metadata(materialize(tmp_path, base, D1))
    assert meta["rejects"] == 3 and meta["versions_written"] == 3
    rows = query(tmp_path, "SELECT record_key, reason, order_reference, credit_note_number, payload FROM recon.rejects "
                           "WHERE source = 'payment_refunds' AND business_date = $d ORDER BY 1", {"d": D1})
    assert [(r[0], r[2], r[3]) for r in rows] == [("re_ccy", "42", "CN-re_ccy"), ("re_float", "42", "CN-re_float"),
                                                  ("re_noamount", "42", "CN-re_noamount")]
    reasons = {r[0]: r[1] for r in rows}
    assert "currency" in reasons["re_ccy"] and "amount" in reasons["re_float"] and "amount" in reasons["re_noamount"]
    assert all("anna@example.com" not in r[4] and "customer_email" not in r[4] for r in rows)
    # the rejects name their order and credit note, so the payment rules leave those unjudged
    assert query(tmp_path, "SELECT count(*) FROM raw.payment_refunds WHERE refund_id LIKE 're_%'")[0][0] == 3


def test_a_disabled_source_reads_nothing_and_the_date_is_not_judged(tmp_path, provider):
    api, base = provider
    materialize(tmp_path, base, D1)
    requests_before = api.requests
    meta = metadata(materialize(tmp_path, "none", D1))
    assert meta["enabled"] is False and api.requests == requests_before
    assert query(tmp_path, "SELECT count(*) FROM state.payment_polls") == [(0,)]


def test_a_refused_key_fails_the_step_in_one_line_without_the_key(tmp_path, provider):
    _, base = provider
    result = materialize(tmp_path, base, D1, key="sk_test_wrong_key_77", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.error.cause.message if failure.step_failure_data.error.cause \
        else failure.step_failure_data.error.message
    assert "refused the API key (401)" in message and "sk_test_wrong_key_77" not in str(failure)
    assert query(tmp_path, "SELECT count(*) FROM raw.payment_refunds") == [(0,)]


def test_a_refund_valid_again_after_a_reject_is_stored_again_and_a_repeated_object_once(tmp_path, provider):
    api, base = provider
    materialize(tmp_path, base, D1)
    good = next(o for o in api.refunds if o["id"] == "re_new")
    api.refunds.remove(good)
    api.refunds.append({**good, "amount": "12.50"})          # the provider sends it broken for a day
    assert metadata(materialize(tmp_path, base, D2))["rejects"] == 1
    api.refunds[-1] = good                                    # ... and valid again, unchanged
    api.inject([dict(good)])                                  # listed twice
    third = metadata(materialize(tmp_path, base, D2 + timedelta(days=1)))
    assert third["rejects"] == 0
    rows = query(tmp_path, "SELECT refund_id FROM raw.payment_refunds WHERE business_date = $d",
                 {"d": D2 + timedelta(days=1)})
    assert rows.count(("re_new",)) == 1  # stored again (the reject stops counting), once


def test_currency_is_trimmed_and_negative_amounts_or_times_are_rejected():
    from pipelines.records.base import validate
    from pipelines.records.payments import ProviderRefund

    ok, _ = validate(ProviderRefund, obj("re_1", T1) | {"currency": " eur "})
    assert ok is not None and ok.currency == "EUR"
    for bad in ({"amount": -100}, {"created": -5}):
        record, reason = validate(ProviderRefund, obj("re_2", T1) | bad)
        assert record is None and ("negative" in reason or "Unix time" in reason), reason
