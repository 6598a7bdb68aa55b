"""``raw.wms_returns`` and ``raw.wms_return_line_items``: the WMS returns, polled incrementally.

The window starts at the highest ``updatedAt`` stored by earlier business dates minus an
overlap, so a rerun of a date asks the same window again and a quiet day costs a handful of
requests. A first run (or a backfill older than anything stored) asks for everything updated
within ``initial_lookback_days`` before T. The watermark counts each stored row at
``least(updated_at, fetched_at)``: a record dated in the future (a WMS clock ahead, a typo'd
year) cannot push the next window past everything that happens meanwhile
(``checks.wms_checks.wms_returns_not_after_fetch`` reports such rows).
"""
from datetime import timedelta

import dagster as dg
import polars as pl

from assets.sources.wms.fetching import paging_metadata, poll_returns
from assets.sources.wms.frames import iso, returns_to_frames
from pipelines.partitions import (SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of,
                                  daily_partitions, utc_now)
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.resources.wms import WmsClientResource


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_returns"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="Warehouse return records (one per return) as the WMS reports them: state, "
                                 "order reference, tracking number and arrival/completion times."),
        dg.AssetSpec(["raw", "wms_return_line_items"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="One row per physical unit the warehouse logged in a return, with its "
                                 "inspection grade (Undamaged, Damaged, Missing, or still waiting)."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_returns(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                recon_config: ReconConfigResource):
    """Polls the WMS for returns per state, incrementally on updatedAt."""
    d = business_date_of(context)
    cfg = recon_config.load().wms
    overlap = timedelta(minutes=cfg.get("poll_overlap_minutes", 60))
    with warehouse.connection() as con:
        # a row counts at most at the time it was fetched: a future updatedAt cannot stop later polls
        watermark = con.execute("SELECT max(least(updated_at, fetched_at)) FROM raw.wms_returns "
                                "WHERE business_date < $d", {"d": d}).fetchone()[0]
    if watermark is None:
        lower = as_of(d) - timedelta(days=cfg.get("initial_lookback_days", 3650))
        mode = "full"
    else:
        lower = watermark - overlap
        mode = "incremental"
    context.log.info(f"WMS returns for {d}: {mode} poll from {iso(lower)}")
    fetched_at = utc_now()
    with wms.client(cfg, logger=context.log) as client:
        items, swept = poll_returns(client, lower, overlap, context.log)
        stats = client.stats
    returns, lines, rejects = returns_to_frames(items, "wms_returns")
    returns = returns.with_columns(business_date=pl.lit(d), fetched_via=pl.lit("poll"), fetched_at=pl.lit(fetched_at))
    lines = lines.with_columns(business_date=pl.lit(d))
    rejects = rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_returns", d, returns)
        warehouse.replace_partition(con, "raw.wms_return_line_items", d, lines)
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source="wms_returns")
    context.log.info(f"WMS returns for {d}: {returns.height} returns, {lines.height} units, "
                     f"{stats.requests} requests, {stats.responses_429} x 429")
    common = {**stats.as_metadata(), **paging_metadata(stats, context.log), "poll_mode": mode,
              "poll_from": iso(lower), "sweep_items": swept, "rejects": rejects.height}
    yield dg.MaterializeResult(asset_key=["raw", "wms_returns"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(returns.height), **common})
    yield dg.MaterializeResult(asset_key=["raw", "wms_return_line_items"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})
