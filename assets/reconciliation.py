"""Reconciliation layer (DuckDB schema ``recon``): matching, per-order-line positions, the
discrepancy rules and the discrepancy lifecycle."""
import dagster as dg

from pipelines.payment_matching import match_payments
from pipelines.partitions import WAREHOUSE_POOL, business_date_of, daily_partitions, utc_now
from pipelines.reconcile import detect, merge_discrepancies, rebuild, summary, summary_markdown
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.retention import rebuilding

COMMON = dict(partitions_def=daily_partitions, group_name="reconciliation", pool=WAREHOUSE_POOL,
              kinds={"duckdb", "sql"})


@dg.asset(key=["recon", "rma_matches"], deps=[["core", "rma_lines"], ["core", "wms_returns"],
                                              ["core", "wms_return_units"]],
          description="Which warehouse return(s) each storefront RMA was tied to, and how: by RMA reference, "
                      "by tracking number, or by order + SKU (first method that finds one wins).", **COMMON)
def rma_matches(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    with rebuilding(warehouse, "recon.rma_matches", d, cfg.working_dates, context.run_id) as con:
        rows = rebuild(con, "recon", "rma_matches", d, cfg)
        by_method = dict(con.execute("SELECT method, count(*) FROM recon.rma_matches WHERE business_date = $d "
                                     "GROUP BY method", {"d": d}).fetchall())
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows),
                                          **{f"links_by_{k}": v for k, v in sorted(by_method.items())}})


@dg.asset(key=["recon", "payment_matches"], deps=[["core", "credit_notes"], ["core", "provider_refunds"]],
          description="Which credit note each payment-provider refund was tied to, and how: by the credit note "
                      "number in its metadata, else by order + amount not yet covered within payment_match_days "
                      "of the note's release (refunds in created order, first hit wins).", **COMMON)
def payment_matches(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    with rebuilding(warehouse, "recon.payment_matches", d, cfg.working_dates, context.run_id) as con:
        counts = match_payments(con, d, cfg)
        rows = con.execute("SELECT count(*) FROM recon.payment_matches WHERE business_date = $d",
                           {"d": d}).fetchone()[0]
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows),
                                          **{f"links_by_{k}" if k not in ("refunds", "unlinked") else k: v
                                             for k, v in sorted(counts.items())}})


@dg.asset(key=["recon", "order_line_positions"],
          deps=[["recon", "rma_matches"], ["core", "order_lines"], ["core", "refund_lines"], ["core", "data_issues"]],
          description="Per order line: units requested, received, accepted and damaged, and money refunded - "
                      "the figures the refund rules compare.", **COMMON)
def order_line_positions(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                         recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    with rebuilding(warehouse, "recon.order_line_positions", d, cfg.working_dates, context.run_id) as con:
        rows = rebuild(con, "recon", "order_line_positions", d, cfg)
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows)})


@dg.asset(key=["recon", "discrepancy_detections"],
          deps=[["recon", "order_line_positions"], ["recon", "rma_matches"], ["core", "stock_levels"],
                ["core", "stock_adjustment_lines"], ["core", "refund_lines"], ["core", "data_issues"],
                ["recon", "payment_matches"], ["core", "credit_notes"], ["core", "provider_refunds"]],
          description="Every discrepancy each rule found on the business date (one SQL file per rule in sql/rules/).",
          **COMMON)
def discrepancy_detections(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                           recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    with warehouse.transaction() as con:
        counts = detect(con, d, recon_config.load())
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(sum(counts.values())),
                                          **{f"rule/{k}": v for k, v in counts.items()}})


@dg.asset(key=["recon", "discrepancies"], deps=[["recon", "discrepancy_detections"]],
          description="The discrepancy register finance reviews: one row per discrepancy ever detected, OPEN while "
                      "the latest run still finds it, RESOLVED (with the date) once it is gone.", **COMMON)
def discrepancies(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    with warehouse.transaction() as con:
        merge_discrepancies(con, d, utc_now())
        total, open_ = con.execute("SELECT count(*), count(*) FILTER (WHERE status = 'OPEN') "
                                   "FROM recon.discrepancies").fetchone()
        table = summary(con, d, recon_config.load().store_currency)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(total),
        "open": open_,
        "summary": dg.MetadataValue.md(summary_markdown(table)),
    })


defs = dg.Definitions(assets=[rma_matches, payment_matches, order_line_positions, discrepancy_detections, discrepancies])
