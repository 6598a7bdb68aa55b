"""Retention, applied by every run after the export (``retention.days``; default: keep all), and the
working tables trimmed to their newest dates (``retention.working_dates``; default: 1)."""
import dagster as dg

from pipelines.partitions import WAREHOUSE_POOL, business_date_of, daily_partitions
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.retention import apply_retention, trim_working_tables


@dg.asset(
    key=["recon", "retention_log"],
    deps=[["exports", "finance_export"]],
    kinds={"duckdb"},
    partitions_def=daily_partitions,
    group_name="reconciliation",
    pool=WAREHOUSE_POOL,
    description="What the retention removed (retention.days: raw versions, canonical copies and detections of "
                "business dates before the cutoff, keeping what later dates still read), per table and run; "
                "and the working tables trimmed to the newest retention.working_dates evaluated dates.",
)
def retention_log(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    days = cfg.retention_days
    with warehouse.transaction() as con:
        log = apply_retention(con, d, days)
        trimmed = trim_working_tables(con, cfg.working_dates, context.run_id)
        total_rows = con.execute("SELECT count(*) FROM recon.retention_log").fetchone()[0]
    removed = sum(r["rows_deleted"] for r in log)
    if log:
        context.log.info(f"Retention ({days} days): cutoff {log[0]['cutoff']}, {removed} rows removed")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(total_rows),
        "retention_days": dg.MetadataValue.text("keep all" if days is None else str(days)),
        "cutoff": dg.MetadataValue.text(str(log[0]["cutoff"]) if log else "none"),
        "rows_removed": dg.MetadataValue.int(removed),
        "working_dates": dg.MetadataValue.text("every date" if cfg.working_dates is None else str(cfg.working_dates)),
        "working_rows_removed": dg.MetadataValue.int(sum(trimmed.values())),
        "removed_per_table": dg.MetadataValue.md(
            "\n".join(["| table | rows removed |", "|---|---|"]
                      + [f"| {r['table_name']} | {r['rows_deleted']} |" for r in log if r["rows_deleted"]])
            if log else "retention is off (retention.days: null)"),
    })


defs = dg.Definitions(assets=[retention_log])
