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
        cols = "* EXCLUDE (fetched_at)" if table == "raw.wms_returns" else (
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
    config.write_text(yaml.safe_dump({"wms": {"min_remaining_calls": 0}}))
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
