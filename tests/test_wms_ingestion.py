"""WMS source assets materialised through Dagster against the emulator: counts equal the
world's, reruns change nothing, a quiet day costs a handful of requests, the tracking probe
finds a return filed under the wrong order, and the token never reaches the warehouse."""
from __future__ import annotations

from datetime import timedelta

import dagster as dg
import yaml

from assets.sources import storefront, wms
from conftest import WORLD_END, query
from pipelines.resources import build_resources
from pipelines.settings import load_settings

WMS_ASSETS = [wms.wms_returns, wms.wms_stock_adjustments, wms.wms_stocks]


def materialize(settings, assets, d, **kwargs):
    result = dg.materialize(assets, partition_key=d.isoformat(), resources=build_resources(settings), **kwargs)
    assert result.success
    return result


def metadata(result, key: list[str]) -> dict:
    events = [e for e in result.get_asset_materialization_events()
              if e.asset_key == dg.AssetKey(key)]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def raw_wms_tables(settings, d) -> dict[str, list]:
    tables = {
        "raw.wms_returns": "return_reference",
        "raw.wms_return_line_items": "return_reference, line_item_reference",
        "raw.wms_stock_adjustments": "transaction_number",
        "raw.wms_stock_adjustment_lines": "transaction_number, line_id, sku",
        "raw.wms_stocks": "sku",
    }
    out = {}
    for table, order in tables.items():
        cols = "* EXCLUDE (fetched_at)" if table in ("raw.wms_returns", "raw.wms_stock_adjustments") else (
            "* EXCLUDE (read_at)" if table == "raw.wms_stocks" else "*")
        out[table] = query(settings, f"SELECT {cols} FROM {table} WHERE business_date = $d ORDER BY {order}",
                           {"d": d})
    return out


def test_first_load_equals_the_world_and_rerun_changes_nothing(recon_env, emulator, manifest):
    world = emulator.snapshot()
    result = materialize(recon_env, WMS_ASSETS, WORLD_END)
    first = raw_wms_tables(recon_env, WORLD_END)
    assert len(first["raw.wms_returns"]) == len(world.returns)
    assert len(first["raw.wms_return_line_items"]) == sum(len(r["lineItems"]) for r in world.returns)
    assert len(first["raw.wms_stock_adjustments"]) == len(world.stock_adjustments)
    assert len(first["raw.wms_stock_adjustment_lines"]) == sum(len(a["lineItems"]) for a in world.stock_adjustments)
    assert len(first["raw.wms_stocks"]) == len(world.stocks)
    meta = metadata(result, ["raw", "wms_returns"])
    assert meta["dagster/row_count"] == len(world.returns)
    # minimum = pages at 100 per page, per state (+ the sweep of records that moved meanwhile)
    assert meta["api_requests"] >= 3 and meta["api_429_responses"] == 0

    materialize(recon_env, WMS_ASSETS, WORLD_END)
    assert raw_wms_tables(recon_env, WORLD_END) == first


def test_quiet_next_day_costs_a_handful_of_requests(recon_env, emulator):
    materialize(recon_env, WMS_ASSETS, WORLD_END - timedelta(days=1))
    emulator.reset_counters()
    result = materialize(recon_env, WMS_ASSETS, WORLD_END)
    meta = metadata(result, ["raw", "wms_returns"])
    assert meta["poll_mode"] == "incremental"
    # nothing changed in the world: one empty page per state, at most a sweep
    assert meta["api_requests"] <= 4
    assert emulator.requests_total <= 4 + 2 + 2


def test_token_never_reaches_the_warehouse_logs_or_metadata(recon_env, manifest, emulator, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    emulator.error_rate = 0.2  # retries log warnings: they must not carry the token either
    result = materialize(recon_env, [*WMS_ASSETS, wms.wms_tracking_probes, *storefront.defs.assets], WORLD_END)
    token = manifest["token"]
    assert token not in caplog.text
    for event in result.all_events:
        assert token not in str(event.event_specific_data) and token not in (event.message or "")
    for (table, column) in query(recon_env, "SELECT table_schema || '.' || table_name, column_name "
                                            "FROM information_schema.columns WHERE data_type = 'VARCHAR'"):
        hits = query(recon_env, f"SELECT count(*) FROM {table} WHERE contains({column}, $t)", {"t": token})
        assert hits[0][0] == 0, f"token found in {table}.{column}"


def test_tracking_probe_finds_a_return_polling_could_not_tie(recon_env, manifest, tmp_path, monkeypatch):
    case = manifest["probe_case"]
    # A short polling lookback: the parcel filed under the wrong order 40 days ago is not polled.
    config = tmp_path / "recon.yaml"
    config.write_text(yaml.safe_dump({"wms": {"initial_lookback_days": 20}}))
    monkeypatch.setenv("RECON_CONFIG", str(config))
    settings = load_settings()
    materialize(settings, [*storefront.defs.assets, *WMS_ASSETS], WORLD_END)
    polled = query(settings, "SELECT count(*) FROM raw.wms_returns WHERE return_reference = $r",
                   {"r": case["return_reference"]})
    assert polled[0][0] == 0, "the probe case must be outside the polling window"
    result = materialize(settings, [wms.wms_tracking_probes], WORLD_END,
                         selection=[dg.AssetKey(["raw", "wms_probed_returns"]),
                                    dg.AssetKey(["raw", "wms_probed_return_line_items"]),
                                    dg.AssetKey(["raw", "wms_tracking_probe_log"])])
    rows = query(settings, "SELECT return_reference, probed_for_rma, probed_tracking_id, order_reference "
                           "FROM raw.wms_probed_returns WHERE business_date = $d", {"d": WORLD_END})
    found = {r[0]: r for r in rows}
    assert case["return_reference"] in found
    assert found[case["return_reference"]][1] == case["rma_reference"]
    assert found[case["return_reference"]][2] == case["tracking_id"]
    items = query(settings, "SELECT count(*) FROM raw.wms_probed_return_line_items WHERE return_reference = $r",
                  {"r": case["return_reference"]})
    assert items[0][0] >= 1
    meta = metadata(result, ["raw", "wms_probed_returns"])
    assert meta["probes"] <= 500 and meta["api_requests"] >= meta["probes"]


def test_run_finishes_under_a_low_rate_limit_meeting_429s(recon_env, emulator, tmp_path, monkeypatch):
    config = tmp_path / "no-pacing.yaml"  # pacing would avoid the 429s this test wants to meet
    config.write_text(yaml.safe_dump({"wms": {"requests_per_minute": 0}}))
    monkeypatch.setenv("RECON_CONFIG", str(config))
    emulator.rate_limit_per_minute = 3
    emulator.rate_window_seconds = 0.5
    emulator.reset_rate_limit()
    result = materialize(load_settings(), WMS_ASSETS, WORLD_END)
    met = sum(metadata(result, key)["api_429_responses"]
              for key in (["raw", "wms_returns"], ["raw", "wms_stock_adjustments"], ["raw", "wms_stocks"]))
    assert met > 0
    assert query(recon_env, "SELECT count(*) FROM raw.wms_returns")[0][0] == len(emulator.snapshot().returns)


def test_run_finishes_with_a_share_of_5xx_answers(recon_env, emulator, tmp_path, monkeypatch):
    config = tmp_path / "fast-retries.yaml"
    config.write_text(yaml.safe_dump({"wms": {"backoff_seconds": 0.01, "backoff_max_seconds": 0.05, "page_size": 25}}))
    monkeypatch.setenv("RECON_CONFIG", str(config))
    emulator.error_rate = 0.3
    result = materialize(load_settings(), WMS_ASSETS, WORLD_END)
    assert metadata(result, ["raw", "wms_returns"])["api_retries"] > 0
    assert emulator.responses_5xx > 0
    assert query(recon_env, "SELECT count(*) FROM raw.wms_returns")[0][0] == len(emulator.snapshot().returns)


# --------------------------------------------------------------------------- hardening: untrusted shapes

import json  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import pytest  # noqa: E402

from checks import wms_checks  # noqa: E402


def rejects_of(settings, source: str, d=WORLD_END) -> dict[str, dict]:
    rows = query(settings, "SELECT record_key, reason, payload, order_reference, return_reference FROM recon.rejects "
                           "WHERE source = $s AND business_date = $d", {"s": source, "d": d})
    return {r[0]: {"reason": r[1], "payload": json.loads(r[2]), "order_reference": r[3], "return_reference": r[4]}
            for r in rows}


class _Injector(dict):
    def __init__(self, emulator):
        super().__init__()
        self.emulator = emulator

    def __setitem__(self, route, items):
        super().__setitem__(route, items)
        self.emulator.inject(route, items)


@pytest.fixture
def inject(emulator):
    """``inject[route] = [items]``: the emulator serves the items as they are (any JSON) on the
    last page of that list endpoint, once: bad input comes over real HTTP, like a real server's."""
    injector = _Injector(emulator)
    yield injector
    emulator.clear_injections()


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_future_dated_record_does_not_stop_later_polls_and_is_reported(recon_env, emulator):
    future = emulator.world.returns[0]
    future["updatedAt"] = "2099-01-01T00:00:00.000000Z"
    day1 = WORLD_END - timedelta(days=1)
    result = materialize(recon_env, [wms.wms_returns, wms_checks.wms_returns_not_after_fetch], day1)
    evaluation, = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    # a return changes after the first fetch
    moved = next(r for r in emulator.world.returns if r["state"] == "ArrivedToWarehouse")
    with emulator._lock:
        stamp = _now_iso()
        moved.update(state="Completed", completedAt=stamp, updatedAt=stamp)
        emulator._selection_cache.clear()
    result = materialize(recon_env, [wms.wms_returns], WORLD_END)
    meta = metadata(result, ["raw", "wms_returns"])
    assert meta["poll_mode"] == "incremental" and meta["poll_from"] < "2099"
    state = query(recon_env, "SELECT state FROM raw.wms_returns WHERE business_date = $d AND return_reference = $r",
                  {"d": WORLD_END, "r": moved["returnReferenceNumber"]})
    assert state == [("Completed",)], "the change after a future-dated record must still be polled"
    # the check names the failing row
    from pipelines.resources.warehouse import connect
    con = connect(recon_env.warehouse)
    try:
        frame = con.execute("SELECT * FROM raw.wms_returns WHERE business_date = $d", {"d": day1}).pl()
    finally:
        con.close()
    outcome = wms_checks.check_wms_returns_not_after_fetch(frame)
    assert not outcome.success and outcome.unexpected_count == 1
    assert outcome.failing_rows[0]["return_reference"] == future["returnReferenceNumber"]


def _bad_return(ref: str, **fields) -> dict:
    base = {"source": "WMS", "returnReferenceNumber": ref, "salesOrderReferenceNumber": f"ord-{ref}",
            "state": "ReturnCreated", "createdAt": "2026-03-01T00:00:00Z", "updatedAt": "2026-03-01T00:00:00Z",
            "notes": "customer jane@example.com called", "customerEmail": "jane@example.com",
            "lineItems": [{"lineItemReferenceNumber": "1", "sku": "S1", "state": "Bent", "comment": "free text"}]}
    base.update(fields)
    return base


def test_non_object_items_and_line_items_are_rejects_not_crashes(recon_env, emulator, inject):
    inject[wms.RETURNS_WITH_ITEMS] = [17, "a string", None,
                                      _bad_return("BAD-LIST", lineItems="oops"),
                                      _bad_return("BAD-ITEM", lineItems=[5]),
                                      _bad_return("BAD-STATE"),
                                      _bad_return("BAD-TIME", updatedAt="31/03/2026 10:00")]
    result = materialize(recon_env, [wms.wms_returns], WORLD_END)
    rejects = rejects_of(recon_env, "wms_returns")
    not_objects = {k: v for k, v in rejects.items() if v["reason"].startswith("record is not a JSON object")}
    assert len(not_objects) == 3 and all(k.startswith("#") for k in not_objects)
    assert sorted(v["payload"]["_type"] for v in not_objects.values()) == ["null", "number", "string"]
    assert sorted(v["reason"] for v in not_objects.values()) == [
        f"record is not a JSON object (a JSON {t})" for t in ("null", "number", "string")]
    assert rejects["BAD-LIST"]["reason"] == "lineItems is not a list (a JSON string)"
    assert rejects["BAD-ITEM"]["reason"] == "lineItems[0] is not a JSON object (a JSON number)"
    assert rejects["BAD-STATE"]["reason"] == ("lineItems[0].state is not one of 'WaitingToBeProcessed', "
                                              "'Missing', 'Damaged' or 'Undamaged': 'Bent'")
    # an unparsable updatedAt used to crash the whole poll before validation: now one reject
    assert rejects["BAD-TIME"]["reason"] == "updatedAt is not an ISO-8601 timestamp: '31/03/2026 10:00'; " \
                                            "lineItems[0].state is not one of 'WaitingToBeProcessed', 'Missing', " \
                                            "'Damaged' or 'Undamaged': 'Bent'"
    for ref in ("BAD-LIST", "BAD-ITEM", "BAD-STATE", "BAD-TIME"):  # grain columns filled
        assert (rejects[ref]["order_reference"], rejects[ref]["return_reference"]) == (f"ord-{ref}", ref)
    assert metadata(result, ["raw", "wms_returns"])["rejects"] == 7
    assert query(recon_env, "SELECT count(*) FROM raw.wms_returns")[0][0] == len(emulator.snapshot().returns)


SPEC_RETURN_FIELDS = {"source", "returnReferenceNumber", "salesOrderChannel", "salesOrderReferenceNumber", "state",
                      "trackingId", "cargoCarrier", "createdAt", "updatedAt", "arrivedToWarehouseAt", "completedAt",
                      "courierRequest", "tag", "lineItems"}


def test_reject_payloads_keep_only_the_documented_fields(recon_env, inject):
    inject[wms.RETURNS_WITH_ITEMS] = [_bad_return("BAD-STATE")]
    inject["/StockAdjustments"] = [{"id": "a1", "transactionNumber": "TX-BAD", "transactionType": "Found",
                                    "tag": "RMA-1", "comment": "free text", "lineItems": [
                                        {"id": "l1", "sku": "S1", "lostAmount": 0, "foundAmount": "two",
                                         "putInQuarantineAmount": 0, "releaseFromQuarantineAmount": 0,
                                         "note": "free text"}],
                                    "completedAt": "2026-03-01T00:00:00Z"}]
    inject["/Stocks"] = [{"sku": "S-BAD", "availableStock": "many", "name": "x", "remark": "free text"}]
    materialize(recon_env, WMS_ASSETS, WORLD_END)
    payload = rejects_of(recon_env, "wms_returns")["BAD-STATE"]["payload"]
    assert "notes" not in payload and "customerEmail" not in payload
    assert set(payload) <= SPEC_RETURN_FIELDS
    assert payload["lineItems"] == [{"lineItemReferenceNumber": "1", "sku": "S1", "state": "Bent"}]
    adjustment = rejects_of(recon_env, "wms_stock_adjustments")["TX-BAD"]
    assert "comment" not in adjustment["payload"] and "note" not in adjustment["payload"]["lineItems"][0]
    assert adjustment["return_reference"] == "RMA-1"
    stock = rejects_of(recon_env, "wms_stocks")["S-BAD"]["payload"]
    assert stock == {"sku": "S-BAD", "availableStock": "many", "name": "x"}


def test_adjustment_and_stock_shapes_are_rejects(recon_env, emulator, inject):
    good = {"transactionType": "Found", "tag": "RMA-9", "completedAt": "2026-03-01T00:00:00Z"}
    amounts = {"lostAmount": 0, "foundAmount": 1, "putInQuarantineAmount": 0, "releaseFromQuarantineAmount": 0}
    no_lost = {k: v for k, v in amounts.items() if k != "lostAmount"}
    inject["/StockAdjustments"] = [
        {**good, "id": "1", "transactionNumber": "TX-ABSENT", "lineItems": [{"id": "l", "sku": "S1", **no_lost}]},
        {**good, "id": "2", "transactionNumber": "TX-NULL",
         "lineItems": [{"id": "l", "sku": "S1", **amounts, "foundAmount": None}]},
        {"id": "3", "transactionNumber": "TX-UNDATED", "transactionType": "Found", "tag": "RMA-9",
         "lineItems": [{"id": "l", "sku": "S1", **amounts}]},
        {**good, "id": "4", "transactionNumber": "TX-LIST", "lineItems": {"sku": "S1"}},
        {**good, "id": "5", "transactionNumber": "TX-ITEM", "lineItems": ["S1"]},
        "not an adjustment",
    ]
    inject["/Stocks"] = [42, None]
    result = materialize(recon_env, WMS_ASSETS, WORLD_END)
    adj = rejects_of(recon_env, "wms_stock_adjustments")
    assert adj["TX-ABSENT"]["reason"] == "lineItems[0].lostAmount is missing"
    assert adj["TX-NULL"]["reason"] == "lineItems[0].foundAmount is missing"
    assert adj["TX-UNDATED"]["reason"] == "completedAt is missing"
    assert adj["TX-LIST"]["reason"] == "lineItems is not a list (a JSON object)"
    assert adj["TX-ITEM"]["reason"] == "lineItems[0] is not a JSON object (a JSON string)"
    assert [v["reason"] for k, v in adj.items() if k.startswith("#")] == ["record is not a JSON object (a JSON string)"]
    assert all(v["return_reference"] == "RMA-9" for k, v in adj.items() if k.startswith("TX-"))
    stored = {r[0] for r in query(recon_env, "SELECT transaction_number FROM raw.wms_stock_adjustments")}
    assert not stored & {"TX-ABSENT", "TX-NULL", "TX-UNDATED", "TX-LIST", "TX-ITEM"}
    assert len(stored) == len(emulator.snapshot().stock_adjustments)
    stocks = rejects_of(recon_env, "wms_stocks")
    assert len(stocks) == 2 and {v["reason"] for v in stocks.values()} == {"record is not a JSON object (a JSON number)",
                                                                "record is not a JSON object (a JSON null)"}
    assert metadata(result, ["raw", "wms_stocks"])["rejects"] == 2


def test_probe_answers_without_reference_or_not_objects_are_rejects(recon_env, emulator, manifest, tmp_path,
                                                                    monkeypatch):
    config = tmp_path / "recon.yaml"
    config.write_text(yaml.safe_dump({"wms": {"initial_lookback_days": 20}}))
    monkeypatch.setenv("RECON_CONFIG", str(config))
    settings = load_settings()
    materialize(settings, [*storefront.defs.assets, *WMS_ASSETS], WORLD_END)
    # every tracking search answers two bad items beside the real ones
    emulator.inject("/Returns", [7, {"trackingId": "1Z", "salesOrderReferenceNumber": "ord-x", "notes": "secret"}],
                    every_time=True)
    result = materialize(settings, [wms.wms_tracking_probes], WORLD_END)
    probes = metadata(result, ["raw", "wms_probed_returns"])["probes"]
    assert probes > 0
    rejects = rejects_of(settings, "wms_tracking_probes")
    reasons = sorted(v["reason"] for v in rejects.values())
    assert reasons == (["probe answer: record is not a JSON object (a JSON number)"] * probes
                       + ["probe answer: returnReferenceNumber is missing"] * probes)
    no_ref = [v for v in rejects.values() if v["reason"] == "probe answer: returnReferenceNumber is missing"]
    assert all(v["order_reference"] == "ord-x" and "notes" not in v["payload"] for v in no_ref)
    case = manifest["probe_case"]
    found = query(settings, "SELECT count(*) FROM raw.wms_probed_returns WHERE return_reference = $r",
                  {"r": case["return_reference"]})
    assert found[0][0] == 1, "the real answers still load"


def test_metadata_says_when_paging_ran_without_dataset_count(recon_env, emulator):
    emulator.drop_dataset_count = True
    result = materialize(recon_env, WMS_ASSETS, WORLD_END)
    for key in (["raw", "wms_returns"], ["raw", "wms_stock_adjustments"], ["raw", "wms_stocks"]):
        meta = metadata(result, key)
        assert meta["paged_without_dataset_count"] is True
        assert "paged until an empty page" in meta["paging_note"]
        assert meta["api_pages_without_dataset_count"] > 0
    assert query(recon_env, "SELECT count(*) FROM raw.wms_returns")[0][0] == len(emulator.snapshot().returns)
    emulator.drop_dataset_count = False
    result = materialize(recon_env, WMS_ASSETS, WORLD_END)
    assert metadata(result, ["raw", "wms_returns"])["paged_without_dataset_count"] is False


def test_a_reject_reason_is_the_models_every_problem_located():
    """One record with three bad fields: the reason lists each, located as the API names it."""
    from assets.sources.wms import returns_to_frames, stocks_to_frames

    bad = _bad_return("R-3", updatedAt="yesterday", trackingId={"no": 1},
                      lineItems=[{"lineItemReferenceNumber": "1", "sku": "", "state": "Undamaged"}])
    returns, units, rejects = returns_to_frames([bad], "wms_returns")
    assert returns.height == 0 and units.height == 0
    assert rejects["reason"].to_list() == ["trackingId is not text (a JSON object); updatedAt is not an ISO-8601 "
                                           "timestamp: 'yesterday'; lineItems[0].sku is missing"]
    stocks, stock_rejects = stocks_to_frames([{"sku": "S1", "availableStock": 2.5, "reservedStock": True},
                                              {"sku": "S2", "availableStock": 3}])
    assert stocks["sku"].to_list() == ["S2"]
    assert stock_rejects["reason"].to_list() == ["availableStock is not an integer: 2.5; "
                                                 "reservedStock is not an integer: True"]


def test_collapse_keeps_the_latest_version_compared_as_instants():
    """"...18.81Z" is earlier than "...18.810942Z" (as text it sorts after it)."""
    from assets.sources.wms import collapse_latest

    older = {"returnReferenceNumber": "R1", "updatedAt": "2024-02-23T11:11:18.81Z", "state": "ReturnCreated"}
    newer = {"returnReferenceNumber": "R1", "updatedAt": "2024-02-23T11:11:18.810942Z", "state": "Completed"}
    shifted = {"returnReferenceNumber": "R2", "updatedAt": "2024-02-23T12:00:00+02:00", "state": "Completed"}
    later_utc = {"returnReferenceNumber": "R2", "updatedAt": "2024-02-23T10:30:00Z", "state": "ReturnCreated"}
    assert collapse_latest([newer, older]) == [newer] and collapse_latest([older, newer]) == [newer]
    assert collapse_latest([later_utc, shifted]) == [later_utc]  # 12:00+02:00 is 10:00Z
