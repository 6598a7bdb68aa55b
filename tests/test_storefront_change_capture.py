"""Storefront change capture against the full-snapshot design, on the demo world over 7 days of
shop activity (pipelines/demo/activity.py), with a rerun and a backfill out of order.

The snapshot design stored, per business date, a full copy of what the storefront read gave at
that date's run. Here every run goes through the real asset (versions); right after it the same
database is read again in full (``read_snapshot``, what the snapshot design copied). For every
date, the rows in force at its fetch (``raw.oc_<table>_at``) must be exactly that copy, and the
canonical tables built from them must equal those built from the copy alone.
"""
from __future__ import annotations

import shutil
from datetime import date, timedelta

import dagster as dg
import duckdb
import polars as pl
import pytest

from assets.sources.storefront import storefront_snapshot
from conftest import WORLD_END
from pipelines.config import load_config
from pipelines.demo.activity import apply_day
from pipelines.reconcile import rebuild
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.storefront import RAW_TABLES, StorefrontResource
from pipelines.resources.storefront_versions import write_versions
from pipelines.resources.warehouse import WarehouseResource, connect
from pipelines.settings import DEFAULT_CONFIG_PATH

CORE_FROM_STOREFRONT = ("order_lines", "rma_lines", "stock_levels")
DAYS = [WORLD_END - timedelta(days=n) for n in range(6, -1, -1)]  # 7 business dates


def _sorted(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


def _core(con: duckdb.DuckDBPyConnection, d: date) -> dict[str, list[tuple]]:
    cfg = load_config()
    out = {}
    for table in CORE_FROM_STOREFRONT:
        rebuild(con, "core", table, d, cfg)
        out[table] = sorted(con.execute(f"SELECT * FROM core.{table} WHERE business_date = $d", {"d": d}).fetchall(),
                            key=repr)
    return out


@pytest.fixture
def shop(tmp_path, demo_world):
    db = tmp_path / "storefront.sqlite"
    shutil.copy(demo_world / "storefront.sqlite", db)
    return db


def test_versions_give_every_date_exactly_its_full_snapshot_over_a_week_of_activity(tmp_path, shop):
    storefront = StorefrontResource(db_url=f"sqlite:///{shop}")
    warehouse = WarehouseResource(path=str(tmp_path / "warehouse.duckdb"))
    resources = {"storefront": storefront, "warehouse": warehouse,
                 "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH))}
    pattern = load_config().tracking_pattern
    snapshots: dict[date, dict[str, list[tuple]]] = {}
    written: dict[date, dict[str, int]] = {}

    def run(d: date) -> None:
        result = dg.materialize([storefront_snapshot], partition_key=d.isoformat(), resources=resources)
        assert result.success
        written[d] = {e.asset_key.to_user_string(): e.step_materialization_data.materialization.metadata[
            "versions_written"].value for e in result.get_asset_materialization_events()}
        snapshot = storefront.read_snapshot(pattern)  # what the snapshot design copied for d
        snapshots[d] = {table: _sorted(frame) for table, frame in snapshot.frames().items()}
        snapshots[d]["rejects"] = sorted(snapshot.rejects.select("record_key", "reason").rows())

    activity = {}
    for i, d in enumerate(DAYS):
        if i not in (0, 3):  # day 3: a quiet day, nothing changes
            activity[d] = apply_day(shop, d, seed=5, scale=3)
        run(d)
    assert all(v == 0 for v in written[DAYS[3]].values()), "a quiet day writes no version"
    assert all(min(counts.values()) >= 1 for counts in activity.values())
    first_load = sum(written[DAYS[0]].values())
    assert 0 < sum(written[DAYS[1]].values()) < first_load / 20, "an active day writes only what changed"
    # out of order: a rerun of an early date after more activity, and a backfill of a date never run
    apply_day(shop, WORLD_END + timedelta(days=1), seed=5, scale=3)
    run(DAYS[2])
    backfill = DAYS[0] - timedelta(days=1)
    run(backfill)

    with warehouse.connection() as con:
        fetches = dict(con.execute("SELECT business_date, fetched_at FROM state.storefront_fetches").fetchall())
        assert set(fetches) == set(snapshots)
        changes = {}
        for d, expected in snapshots.items():
            for table in RAW_TABLES:
                got = _sorted(con.execute(f"SELECT * FROM {table}_at($d)", {"d": d}).pl())
                assert got == expected[table], (d, table)
            rejects = sorted(con.execute("SELECT record_key, reason FROM recon.rejects WHERE source = 'storefront' "
                                         "AND business_date = $d", {"d": d}).fetchall())
            assert rejects == expected["rejects"], d
            changes[d] = _core(con, d)
        # a closed version is only kept while some date's fetch reads it
        orphans = {table: con.execute(
            f"SELECT count(*) FROM {table} v WHERE valid_to IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
            "state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to)"
        ).fetchone()[0] for table in RAW_TABLES}
        assert set(orphans.values()) == {0}, orphans
        assert con.execute("SELECT count(*) FROM raw.oc_returns WHERE valid_to IS NOT NULL").fetchone()[0] > 0
    # the canonical tables built from the versions equal those built from each date's copy alone
    for d, expected in snapshots.items():
        con = connect(tmp_path / f"snapshot-{d}.duckdb")
        try:
            con.execute("BEGIN TRANSACTION")
            schema = {t: s for t, (_, s) in RAW_TABLES.items()}
            write_versions(con, d, {t: pl.DataFrame(expected[t], schema=schema[t], orient="row") for t in RAW_TABLES})
            con.execute("COMMIT")
            assert _core(con, d) == changes[d], d
        finally:
            con.close()
    assert any(changes[d]["rma_lines"] != changes[DAYS[0]]["rma_lines"] for d in DAYS[1:]), \
        "the activity shows in the canonical RMA lines"


def test_a_warehouse_of_the_per_date_layout_migrates_and_never_builds_a_date_it_has_not_read(tmp_path, shop):
    """The per-date copies go in the DDL; a date the storefront has not been read for since must fail
    with a reason rather than build its canonical tables from an empty shop (every return a break)."""
    path = tmp_path / "warehouse.duckdb"
    d = DAYS[-1]
    old = duckdb.connect(str(path))
    old.execute("CREATE SCHEMA raw; CREATE TABLE raw.oc_orders (business_date DATE, order_id BIGINT NOT NULL, "
                "store_id INTEGER, customer_id BIGINT, total DECIMAL(15,4), order_status_id INTEGER, "
                "order_status_name VARCHAR, currency_code VARCHAR, currency_value DECIMAL(15,8), "
                "date_added TIMESTAMP, date_modified TIMESTAMP)")
    old.execute("INSERT INTO raw.oc_orders (business_date, order_id) VALUES ($d, 1), ($d, 2)", {"d": d})
    old.close()

    warehouse = WarehouseResource(path=str(path))
    with warehouse.connection() as con:
        columns = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'raw' "
                                             "AND table_name = 'oc_orders'").fetchall()}
        assert {"valid_from", "valid_to", "row_hash"} <= columns and "business_date" not in columns
        assert con.execute("SELECT count(*) FROM raw.oc_orders").fetchone()[0] == 0
        with pytest.raises(Exception, match=rf"the storefront has not been read for {d}"):
            rebuild(con, "core", "order_lines", d, load_config())
        assert con.execute("SELECT count(*) FROM core.order_lines").fetchone()[0] == 0
    # once the date is read again, it builds
    resources = {"storefront": StorefrontResource(db_url=f"sqlite:///{shop}"), "warehouse": warehouse,
                 "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH))}
    assert dg.materialize([storefront_snapshot], partition_key=d.isoformat(), resources=resources).success
    with warehouse.connection() as con:
        assert rebuild(con, "core", "order_lines", d, load_config()) > 0
