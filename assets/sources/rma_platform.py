"""GraphQL RMA platform source asset (sources.md section 5.1): the platform's RMA orders, their
lines and status history.

Polled incrementally on ``updatedAt`` (pipelines/resources/rma_platform.py): from the latest
``updatedAt`` stored by earlier business dates minus ``rma_platform.poll_overlap_minutes``; a
first run or a backfill before any stored date reads ``initial_lookback_days`` before T. A version
(``rma_id``, ``updated_at``) is written only when no earlier date stored it, so a quiet day writes
nothing. ``RMA_PLATFORM_URL=none`` disables the source: nothing is read.

Not yet read by the canonical layer (issue 13 goes on: the canonical RMA table over all sources,
``PLATFORM_STATUS_MISMATCH``); the data is stored, checked and in the lineage.
"""
from datetime import timedelta

import dagster as dg
import polars as pl

from pipelines.partitions import SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of, daily_partitions, utc_now
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.rma_platform import RmaPlatformResource, as_rows
from pipelines.resources.warehouse import WarehouseResource
from pipelines.retention import assert_writable

SOURCE = "rma_platform"
ORDER_COLUMNS = {"rma_id": pl.Utf8, "updated_at": pl.Datetime("us"), "return_reference": pl.Utf8,
                 "external_reference": pl.Utf8, "order_reference": pl.Utf8, "tracking_id": pl.Utf8,
                 "expected_resolution": pl.Utf8, "processing_status": pl.Utf8, "delivery_status": pl.Utf8,
                 "financial_status": pl.Utf8, "fulfillment_status": pl.Utf8, "currency": pl.Utf8,
                 "refunded_amount": pl.Decimal(18, 4), "received_at": pl.Datetime("us"),
                 "issued_at": pl.Datetime("us")}
LINE_COLUMNS = {"rma_id": pl.Utf8, "updated_at": pl.Datetime("us"), "line_id": pl.Utf8, "sku": pl.Utf8,
                "quantity": pl.Int32, "line_state": pl.Utf8, "order_line_reference": pl.Utf8}
HISTORY_COLUMNS = {"rma_id": pl.Utf8, "updated_at": pl.Datetime("us"), "dimension": pl.Utf8, "status": pl.Utf8,
                   "changed_at": pl.Datetime("us")}
REJECT_COLUMNS = {"record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8, "order_reference": pl.Utf8,
                  "rma_reference": pl.Utf8}

NEW_VERSIONS = """
CREATE OR REPLACE TEMP TABLE _new_versions AS
SELECT DISTINCT n.rma_id, n.updated_at FROM _orders n
WHERE NOT EXISTS (SELECT 1 FROM raw.rma_platform_orders o
                  WHERE o.rma_id = n.rma_id AND o.updated_at = n.updated_at AND o.business_date < $d)
"""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "rma_platform_orders"], kinds={"graphql", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="RMA orders of the GraphQL returns platform: one row per version (id, updatedAt) "
                                 "with its return reference, linked order, latest tracking number, the four "
                                 "statuses as read and the refunded amount of its financial resolutions."),
        dg.AssetSpec(["raw", "rma_platform_lines"], kinds={"graphql", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="The lines (SKU, quantity, line state, storefront order line) of each RMA order "
                                 "version."),
        dg.AssetSpec(["raw", "rma_platform_status_history"], kinds={"graphql", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Every change of the four statuses of each RMA order version, with when it "
                                 "happened: the status at T is read from it."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def rma_platform_orders(context: dg.AssetExecutionContext, rma_platform: RmaPlatformResource,
                        warehouse: WarehouseResource, recon_config: ReconConfigResource):
    d = business_date_of(context)
    t = as_of(d)
    keys = ("rma_platform_orders", "rma_platform_lines", "rma_platform_status_history")
    if not rma_platform.enabled:
        context.log.info(f"RMA platform disabled (RMA_PLATFORM_URL=none): not read for {d}")
        with warehouse.connection() as con:
            for key in keys:
                rows = con.execute(f"SELECT count(*) FROM raw.{key}").fetchone()[0]
                yield dg.MaterializeResult(asset_key=["raw", key], metadata={
                    "dagster/row_count": dg.MetadataValue.int(rows), "enabled": False})
        return
    settings = recon_config.load().rma_platform
    with warehouse.connection() as con:
        latest = con.execute("SELECT max(updated_at) FROM raw.rma_platform_orders WHERE business_date < $d",
                             {"d": d}).fetchone()[0]
    since = (t - timedelta(days=settings["initial_lookback_days"]) if latest is None
             else latest - timedelta(minutes=settings["poll_overlap_minutes"]))
    client = rma_platform.client(retries=int(settings["max_retries"]), timeout_s=int(settings["timeout_seconds"]))
    context.log.info(f"RMA platform for {d}: orders updated since {since:%Y-%m-%d %H:%M} UTC from {client.url}")
    read = client.read(since, progress=lambda pages, n: context.log.debug(f"RMA platform: page {pages}, {n} orders"))
    heads, lines, history = [], [], []
    for order in read.orders:
        head, order_lines, changes = as_rows(order)
        heads.append(head)
        lines += order_lines
        history += changes
    orders_frame = pl.DataFrame(heads, schema=ORDER_COLUMNS)
    lines_frame = pl.DataFrame(lines, schema=LINE_COLUMNS)
    history_frame = pl.DataFrame(history, schema=HISTORY_COLUMNS)
    rejects = pl.DataFrame(read.rejects, schema=REJECT_COLUMNS).with_columns(
        source=pl.lit(SOURCE), business_date=pl.lit(d))
    fetched_at = utc_now()
    written = {}
    with warehouse.transaction() as con:
        assert_writable(con, d)
        for key in keys:
            con.execute(f"DELETE FROM raw.{key} WHERE business_date = $d", {"d": d})
        for name, frame in (("_orders", orders_frame), ("_lines", lines_frame), ("_history", history_frame)):
            con.register(name, frame.to_arrow())
        try:
            con.execute(NEW_VERSIONS, {"d": d})
            con.execute("INSERT INTO raw.rma_platform_orders SELECT $d, o.*, $f FROM _orders o "
                        "JOIN _new_versions USING (rma_id, updated_at)", {"d": d, "f": fetched_at})
            con.execute("INSERT INTO raw.rma_platform_lines SELECT $d, l.* FROM _lines l "
                        "JOIN _new_versions USING (rma_id, updated_at)", {"d": d})
            con.execute("INSERT INTO raw.rma_platform_status_history SELECT $d, h.* FROM _history h "
                        "JOIN _new_versions USING (rma_id, updated_at)", {"d": d})
        finally:
            for name in ("_orders", "_lines", "_history"):
                con.unregister(name)
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)
        for key in keys:
            written[key] = con.execute(f"SELECT count(*) FROM raw.{key} WHERE business_date = $d",
                                       {"d": d}).fetchone()[0]
        totals = {key: con.execute(f"SELECT count(*) FROM raw.{key}").fetchone()[0] for key in keys}
    context.log.info(f"RMA platform for {d}: {len(heads)} orders read in {read.pages} page(s), "
                     f"{written['rma_platform_orders']} new versions, {rejects.height} rejected")
    if rejects.height:
        context.log.warning(f"RMA platform: {rejects.height} order(s) rejected, e.g. "
                            f"{rejects['record_key'][0]}: {rejects['reason'][0]}")
    for key in keys:
        meta = {"dagster/row_count": dg.MetadataValue.int(totals[key]), "enabled": True,
                "versions_written" if key == "rma_platform_orders" else "rows_written": written[key]}
        if key == "rma_platform_orders":
            meta.update({"orders_read": len(heads), "pages": read.pages, "rejects": rejects.height,
                         "window_updated_gte": since.isoformat()})
        yield dg.MaterializeResult(asset_key=["raw", key], metadata=meta)


defs = dg.Definitions(assets=[rma_platform_orders])
