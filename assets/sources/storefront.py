"""Storefront (OpenCart) source assets: orders, order lines, products, RMAs and RMA history,
kept as versions (change capture: ``pipelines/resources/storefront_versions.py``).

Each run reads the storefront in full and validates every row; the five tables' versions, the
business date's fetch and its rejects are written in one warehouse transaction. Only rows new,
changed or gone write anything, and what a date read (``raw.oc_<table>_at(date)``) is exactly
the snapshot its fetch saw, so a rerun of a date replaces its fetch instead of adding to it.
The connection URL is only ever shown with its password hidden.
"""

import dagster as dg
import polars as pl

from pipelines.partitions import SOURCE_FRESHNESS, WAREHOUSE_POOL, business_date_of, daily_partitions
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.storefront import SOURCE, RAW_TABLES, StorefrontResource
from pipelines.resources.storefront_versions import write_versions
from pipelines.resources.warehouse import WarehouseResource

KINDS = {"sqlalchemy", "duckdb"}
DESCRIPTIONS = {
    "raw.oc_orders": "Storefront orders as of the run: order reference, status, total and the currency "
                     "(with its exchange rate to the store currency). No customer names or contact details.",
    "raw.oc_order_lines": "One row per product line of a storefront order: SKU (model), quantity, unit price "
                          "and unit tax in the store currency. The basis of every refund and unit comparison.",
    "raw.oc_products": "Storefront catalogue stock: per product, the SKU, the quantity the shop believes it "
                       "can sell, and the unit price. Compared with the warehouse's sellable stock.",
    "raw.oc_returns": "Storefront return requests (RMAs, shown to customers as RMA-<id>): order, SKU, "
                      "quantity, reason, status and action names as the shop has them (unmapped names "
                      "load and are reported by the checks). RMAs failing validation (missing order or "
                      "order line, bad quantity, no date) are in recon.rejects instead.",
    "raw.oc_return_history": "Every status change of every RMA with its date (UTC), so the status on any past "
                             "day is known, plus the return parcel's tracking number when shop staff noted "
                             "one (the note itself is not kept).",
}


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey(table.split("."))


@dg.multi_asset(
    specs=[dg.AssetSpec(_key(table), kinds=KINDS, description=DESCRIPTIONS[table],
                        freshness_policy=SOURCE_FRESHNESS) for table in RAW_TABLES],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
    can_subset=False,
)
def storefront_snapshot(context: dg.AssetExecutionContext, storefront: StorefrontResource,
                        warehouse: WarehouseResource, recon_config: ReconConfigResource):
    """Reads the OpenCart database once and stores what changed as versions, the fetch under the
    business date."""
    d = business_date_of(context)
    config = recon_config.load()
    context.log.info(f"storefront snapshot for {d}: reading {storefront.safe_url} "
                     f"(table prefix {storefront.table_prefix!r}, shop time zone {storefront.timezone!r})")
    snapshot = storefront.read_snapshot(config.tracking_pattern, config.rma_status_map, config.rma_action_map)
    frames = snapshot.frames()
    for table, frame in frames.items():
        context.log.info(f"storefront {table}: {snapshot.read_counts[table]} read, {frame.height} valid, "
                         f"{snapshot.reject_counts[table]} rejected")
    rejects = snapshot.rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)  # refuses a retired date
        fetched_at, versions = write_versions(con, d, frames)
    for table, change in versions.items():
        context.log.info(f"storefront {table}: {change.opened} version(s) written, {change.closed} closed, "
                         f"{change.current} rows in force")
    context.log.info(f"storefront fetch of {d} stored at {fetched_at.isoformat()} UTC: "
                     f"{rejects.height} rejects in recon.rejects")
    if rejects.height:
        context.log.warning(f"storefront: {rejects.height} record(s) failed validation, e.g. "
                            f"{rejects['record_key'][0]}: {rejects['reason'][0]}")
    for table, frame in frames.items():
        metadata = {
            "dagster/row_count": dg.MetadataValue.int(frame.height),
            "rows_read": dg.MetadataValue.int(snapshot.read_counts[table]),
            "versions_written": dg.MetadataValue.int(versions[table].opened),
            "versions_closed": dg.MetadataValue.int(versions[table].closed),
            "rejects": dg.MetadataValue.int(snapshot.reject_counts[table]),
        }
        if table == "raw.oc_returns":
            metadata["storefront_rejects_total"] = dg.MetadataValue.int(rejects.height)
            if rejects.height:
                metadata["rejects_preview"] = dg.MetadataValue.md(_preview(rejects))
        yield dg.MaterializeResult(asset_key=_key(table), metadata=metadata)


def _preview(rejects: pl.DataFrame, limit: int = 20) -> str:
    rows = ["| record | reason |", "|---|---|"]
    for key, reason in rejects.select("record_key", "reason").head(limit).iter_rows():
        rows.append(f"| {key} | {str(reason).replace('|', '/')} |")
    if rejects.height > limit:
        rows.append(f"| ... | {rejects.height - limit} more in recon.rejects |")
    return "\n".join(rows)


defs = dg.Definitions(assets=[storefront_snapshot])
