"""``raw.wms_stock_adjustments`` (+ lines) and ``raw.wms_stocks``: the warehouse's stock side.

Adjustments are completed transactions, fetched incrementally on ``completedAt`` with an
overlap. Like the returns poll, the watermark counts each stored transaction at
``least(completed_at, fetched_at)``: one dated in the future cannot stop later polls
(``checks.wms_checks.wms_stock_adjustments_not_after_fetch`` reports it). Stocks are read whole
at each run (``availableStock`` is what can be sold now).
"""
from datetime import timedelta

import dagster as dg
import polars as pl

from assets.sources.wms.fetching import fetch_keyed, paging_metadata
from assets.sources.wms.frames import adjustments_to_frames, iso, stocks_to_frames
from pipelines.partitions import (SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of,
                                  daily_partitions, utc_now)
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.resources.wms import WmsClientResource


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_stock_adjustments"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="Warehouse stock adjustment transactions (restocks, losses, quarantine moves); "
                                 "a return's restock is tagged with its return reference."),
        dg.AssetSpec(["raw", "wms_stock_adjustment_lines"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Per-SKU unit changes of each stock adjustment."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_stock_adjustments(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                          recon_config: ReconConfigResource):
    """Adjustments are completed transactions: fetched incrementally on completedAt, with an overlap."""
    d = business_date_of(context)
    cfg = recon_config.load().wms
    overlap = timedelta(minutes=cfg.get("poll_overlap_minutes", 60))
    with warehouse.connection() as con:
        # capped at the fetch time (rows stored before fetched_at existed count at completed_at)
        watermark = con.execute("SELECT max(least(completed_at, fetched_at)) FROM raw.wms_stock_adjustments "
                                "WHERE business_date < $d", {"d": d}).fetchone()[0]
    lower = (watermark - overlap) if watermark else as_of(d) - timedelta(days=cfg.get("initial_lookback_days", 3650))
    fetched_at = utc_now()
    with wms.client(cfg, logger=context.log) as client:
        items = fetch_keyed(client, "/StockAdjustments", [("gtoe", "completedAt", iso(lower))],
                            [("completedAt", "asc"), ("transactionNumber", "asc")], key="transactionNumber")
        stats = client.stats
    heads, lines, rejects = adjustments_to_frames(items)
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_stock_adjustments", d,
                                    heads.with_columns(business_date=pl.lit(d), fetched_at=pl.lit(fetched_at)))
        warehouse.replace_partition(con, "raw.wms_stock_adjustment_lines", d, lines.with_columns(business_date=pl.lit(d)))
        warehouse.replace_partition(con, "recon.rejects", d, rejects.with_columns(business_date=pl.lit(d)),
                                    source="wms_stock_adjustments")
    yield dg.MaterializeResult(asset_key=["raw", "wms_stock_adjustments"], metadata={
        "dagster/row_count": dg.MetadataValue.int(heads.height), "poll_from": iso(lower),
        "rejects": rejects.height, **stats.as_metadata(), **paging_metadata(stats, context.log)})
    yield dg.MaterializeResult(asset_key=["raw", "wms_stock_adjustment_lines"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})


@dg.asset(
    key=["raw", "wms_stocks"],
    kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
    description="Warehouse stock per SKU as read during the run (availableStock is what can be sold now).",
)
def wms_stocks(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
               recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load().wms
    read_at = utc_now()
    with wms.client(cfg, logger=context.log) as client:
        items = fetch_keyed(client, "/Stocks", [], [("sku", "asc")], key="sku")
        stats = client.stats
    frame, rejects = stocks_to_frames(items)
    frame = frame.with_columns(business_date=pl.lit(d), read_at=pl.lit(read_at))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_stocks", d, frame)
        warehouse.replace_partition(con, "recon.rejects", d, rejects.with_columns(business_date=pl.lit(d)),
                                    source="wms_stocks")
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(frame.height),
                                          "rejects": rejects.height, **stats.as_metadata(),
                                          **paging_metadata(stats, context.log)})
