"""``raw.wms_probed_returns`` (+ units, + the probe log): WMS returns found by tracking number.

A storefront RMA with a tracking number that no polled WMS return explains (the parcel may be
filed under another order) is looked up with ``GET /Returns?trackingId=...`` and each return
found is read in full. An answer item that is not a return summary, or a full return that is not
a JSON object, is a reject (``wms_tracking_probes``), never a traceback.
"""
import dagster as dg
import polars as pl

from assets.sources.wms.fetching import paging_metadata
from assets.sources.wms.frames import (REJECT_SCHEMA, collapse_latest, field_of, probe_summary, reject_row,
                                       returns_to_frames)
from pipelines.partitions import (SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of,
                                  daily_partitions, utc_now)
from pipelines.records.wms import ReturnSummary
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.resources.wms import WmsClientResource
from pipelines.settings import SQL_DIR

CANDIDATES_SQL = SQL_DIR / "sources" / "select_wms_probe_candidates.sql"
PROBE_LOG_SCHEMA = {"rma_reference": pl.Utf8, "tracking_id": pl.Utf8, "returns_found": pl.Int32,
                    "probed_at": pl.Datetime("us")}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_probed_returns"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     deps=[["raw", "wms_returns"], ["raw", "oc_returns"], ["raw", "oc_return_history"]],
                     description="Warehouse returns found by looking up the tracking number of storefront "
                                 "RMAs that matched no polled return (parcels filed under another order)."),
        dg.AssetSpec(["raw", "wms_probed_return_line_items"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Units of the returns found by tracking-number probes."),
        dg.AssetSpec(["raw", "wms_tracking_probe_log"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Every tracking-number probe made and how many returns it found; an RMA is "
                                 "not probed again within the cooldown."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_tracking_probes(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                        recon_config: ReconConfigResource):
    """GET /Returns?trackingId=... for RMAs with a tracking number that no polled WMS return explains."""
    d = business_date_of(context)
    cfg = recon_config.load()
    # RMAs refused or withdrawn need no parcel: every storefront name mapped to those statuses.
    closed_names = [k for k, v in cfg.rma_status_map.items() if v in ("REJECTED", "CANCELED")] or ["-"]
    with warehouse.connection() as con:
        candidates = con.execute(CANDIDATES_SQL.read_text(), {
            "d": d, "t": as_of(d), "limit": int(cfg.wms.get("max_tracking_probes", 500)),
            "closed_names": closed_names, "cooldown": int(cfg.wms.get("probe_cooldown_days", 7)),
        }).fetchall()
    context.log.info(f"Tracking probes for {d}: {len(candidates)} RMA(s) with an unexplained tracking number")
    found: list[dict] = []
    probe_of: dict[str, tuple[str, str]] = {}
    log_rows: list[dict] = []
    probe_rejects: list[dict] = []
    fetched_at = utc_now()
    with wms.client(cfg.wms, logger=context.log) as client:
        for i, (rma_reference, tracking_id) in enumerate(candidates, 1):
            hits = 0
            for index, summary in enumerate(client.find_returns_by_tracking(tracking_id)):
                ref, why = probe_summary(summary)
                if ref is None:
                    probe_rejects.append(reject_row(
                        "wms_tracking_probes", ReturnSummary, summary, f"probe answer: {why}",
                        f"{rma_reference}/{tracking_id}#{index}",
                        order_reference=field_of(summary, "salesOrderReferenceNumber")))
                    continue
                full = client.get_return(ref)
                if full is None:
                    continue
                hits += isinstance(full, dict)
                found.append(full)  # validated with the others below; a non-object is rejected there
                probe_of[ref] = (rma_reference, tracking_id)
            log_rows.append({"rma_reference": rma_reference, "tracking_id": tracking_id, "returns_found": hits,
                             "probed_at": fetched_at})
            if i % 100 == 0:
                context.log.info(f"Tracking probes: {i}/{len(candidates)} done, {len(found)} returns found")
        stats = client.stats
    returns, lines, rejects = returns_to_frames(collapse_latest(found), "wms_tracking_probes")
    rejects = pl.concat([rejects, pl.DataFrame(probe_rejects, schema=REJECT_SCHEMA)])
    # a full return is asked by the reference the summary gave: it is the key of probe_of
    origin = pl.DataFrame([(ref, rma, tracking) for ref, (rma, tracking) in probe_of.items()],
                          schema={"return_reference": pl.Utf8, "probed_for_rma": pl.Utf8,
                                  "probed_tracking_id": pl.Utf8}, orient="row")
    returns = (returns.join(origin, on="return_reference", how="left")
               .with_columns(business_date=pl.lit(d), fetched_at=pl.lit(fetched_at)))
    lines = lines.with_columns(business_date=pl.lit(d))
    rejects = rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_probed_returns", d, returns)
        warehouse.replace_partition(con, "raw.wms_probed_return_line_items", d, lines)
        warehouse.replace_partition(con, "raw.wms_tracking_probe_log", d, pl.DataFrame(
            log_rows, schema=PROBE_LOG_SCHEMA).with_columns(business_date=pl.lit(d)))
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source="wms_tracking_probes")
    yield dg.MaterializeResult(asset_key=["raw", "wms_probed_returns"], metadata={
        "dagster/row_count": dg.MetadataValue.int(returns.height), "probes": len(candidates),
        "rejects": rejects.height, **stats.as_metadata(), **paging_metadata(stats, context.log)})
    yield dg.MaterializeResult(asset_key=["raw", "wms_probed_return_line_items"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})
    yield dg.MaterializeResult(asset_key=["raw", "wms_tracking_probe_log"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(len(log_rows))})
