"""The GraphQL RMA platform's source asset (assets/sources/rma_platform.py) materialised by Dagster
with real resources against the emulated platform over HTTP, into a DuckDB file on tmp_path: the
incremental updatedAt window with its overlap, versions written only when new, lines and history
beside them, rejects with their grain, a disabled source, a failing platform failing the step."""
from __future__ import annotations

from datetime import date, timedelta, timezone
from types import SimpleNamespace

import dagster as dg
import pytest
from conftest import query as warehouse_query

from pipelines.demo.emulator import WmsEmulator, WmsWorld
from pipelines.demo.rma_platform_emulator import RmaPlatformApi
from pipelines.partitions import as_of
from tests.test_rma_platform_client import node

TOKEN = "plat-ingest-token-4411"
D1 = date(2026, 3, 20)
T1 = as_of(D1)
D2 = D1 + timedelta(days=1)


def at(delta: timedelta) -> str:
    return (T1 + delta).replace(tzinfo=timezone.utc).isoformat()


@pytest.fixture
def platform():
    nodes = [node(i, updatedAt=at(timedelta(hours=-i))) for i in range(1, 6)]
    api = RmaPlatformApi(nodes, token=TOKEN)
    with WmsEmulator(WmsWorld(), rma_platform=api) as emu:
        yield api, emu.base_url


def materialize(tmp_path, url: str, d: date, raise_on_error: bool = True):
    from assets.sources.rma_platform import rma_platform_orders
    from pipelines.resources.config import ReconConfigResource
    from pipelines.resources.rma_platform import RmaPlatformResource
    from pipelines.resources.warehouse import WarehouseResource
    from pipelines.settings import DEFAULT_CONFIG_PATH

    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                 "rma_platform": RmaPlatformResource(url=url, token=TOKEN),
                 "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH))}
    return dg.materialize([rma_platform_orders], resources=resources, partition_key=d.isoformat(),
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=raise_on_error)


def query(tmp_path, sql: str, params=None):
    """The warehouse the materialisation wrote (conftest.query, read from tmp_path)."""
    return warehouse_query(SimpleNamespace(warehouse=tmp_path / "warehouse.duckdb"), sql, params or {})


def meta(result, key: str = "rma_platform_orders") -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == key]
    return {k: v.value for k, v in mats[0].materialization.metadata.items()}


def test_incremental_versions_with_lines_and_history(tmp_path, platform):
    api, base = platform
    first = meta(materialize(tmp_path, base, D1))
    assert first["orders_read"] == 5 and first["versions_written"] == 5
    assert query(tmp_path, "SELECT count(*) FROM raw.rma_platform_lines") == [(5,)]
    assert query(tmp_path, "SELECT count(*) FROM raw.rma_platform_status_history") == [(10,)]
    assert query(tmp_path, "SELECT return_reference, order_reference, tracking_id, refunded_amount FROM "
                           "raw.rma_platform_orders WHERE rma_id = 'rma-0001'") == [
        ("RP-1001", "101", "1Z0000000001", 0)]
    # the next day: from the latest updatedAt stored (T1 - 1 h) minus the 60-minute overlap
    api.orders[0]["updatedAt"] = at(timedelta(hours=5))
    api.orders[0]["processingStatus"] = "COMPLETE"
    api.orders[0]["statusHistory"] = api.orders[0]["statusHistory"] + [
        {"dimension": "PROCESSING", "status": "COMPLETE", "at": at(timedelta(hours=5))}]
    second = meta(materialize(tmp_path, base, D2))
    assert api.pages[-1]["updated_at_gte"] == (T1 - timedelta(hours=2)).replace(tzinfo=timezone.utc)
    assert second["orders_read"] == 2  # rma-0001's new version and rma-0002 (updated T1 - 2 h, in the overlap)
    assert second["versions_written"] == 1  # only the new version of rma-0001
    assert query(tmp_path, "SELECT processing_status FROM raw.rma_platform_orders WHERE rma_id = 'rma-0001' "
                           "ORDER BY updated_at") == [("ACCEPTED",), ("COMPLETE",)]
    assert query(tmp_path, "SELECT count(*) FROM raw.rma_platform_status_history WHERE business_date = $d",
                 {"d": D2}) == [(3,)]
    # a rerun of the date writes the same rows
    before = query(tmp_path, "SELECT * EXCLUDE (fetched_at) FROM raw.rma_platform_orders ORDER BY ALL")
    materialize(tmp_path, base, D2)
    assert query(tmp_path, "SELECT * EXCLUDE (fetched_at) FROM raw.rma_platform_orders ORDER BY ALL") == before


def test_bad_nodes_are_rejects_and_a_disabled_source_reads_nothing(tmp_path, platform):
    api, base = platform
    api.orders.append(node(9, updatedAt=at(timedelta(hours=-1)), lines=[]))
    first = meta(materialize(tmp_path, base, D1))
    assert first["rejects"] == 1 and first["versions_written"] == 5
    assert query(tmp_path, "SELECT record_key, rma_reference, order_reference FROM recon.rejects "
                           "WHERE source = 'rma_platform'") == [("rma-0009", "RP-1009", "109")]
    requests_before = api.requests
    off = meta(materialize(tmp_path, "none", D2))
    assert off["enabled"] is False and api.requests == requests_before


def test_a_failing_platform_fails_the_step_in_one_line(tmp_path, platform):
    api, base = platform
    api.errors_next(1)
    result = materialize(tmp_path, base, D1, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "query failed on page 1" in str(failure.step_failure_data.error) and TOKEN not in str(failure)
