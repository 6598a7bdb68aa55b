"""Canonical layer (DuckDB schema ``core``): one asset per table, each built by
``sql/core/build_<table>.sql`` for the business date as of T = D+1 00:00 UTC."""
import dagster as dg

from pipelines.partitions import WAREHOUSE_POOL, business_date_of, daily_partitions
from pipelines.reconcile import rebuild
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.retention import rebuilding

CORE_ASSETS = {
    "order_lines": (
        [["raw", "oc_order_lines"], ["raw", "oc_orders"]],
        "Storefront order lines as the rules see them: one per order and SKU (size/colour variants of one "
        "SKU are one line), with the gross unit price in the order's currency ((price + tax) x rate).",
    ),
    "data_issues": (
        [["raw", "oc_returns"], ["raw", "oc_return_history"], ["raw", "oc_order_lines"], ["raw", "refund_lines"],
         ["raw", "payment_refunds"], ["raw", "wms_returns"], ["raw", "wms_probed_returns"], ["raw", "wms_stock_adjustments"]],
        "Records that failed validation (recon.rejects), per order, RMA or warehouse return they name: the "
        "rules leave those grains unjudged rather than judge them as if the record did not exist.",
    ),
    "rma_lines": (
        [["raw", "oc_returns"], ["raw", "oc_return_history"], ["core", "order_lines"]],
        "Storefront returns (RMA lines) with their status as it was at the end of the business date, "
        "how long they have been authorised, the action and the parcel's tracking number.",
    ),
    "wms_returns": (
        [["raw", "wms_returns"], ["raw", "wms_probed_returns"]],
        "Warehouse returns as they stood at the end of the business date (created, arrived, completed).",
    ),
    "wms_return_units": (
        [["raw", "wms_return_line_items"], ["raw", "wms_probed_return_line_items"], ["core", "wms_returns"]],
        "Every returned unit with its inspection grade at the end of the business date.",
    ),
    "refund_lines": (
        [["raw", "refund_lines"], ["raw", "oc_orders"], ["raw", "oc_order_lines"], ["core", "order_lines"]],
        "Refunds per credit note and order line, each credit note as it stood at the end of the business "
        "date (its latest version by then); 'money out' means released and paid.",
    ),
    "credit_notes": (
        [["core", "refund_lines"]],
        "Credit notes as they stood at the end of the business date, one row each: what the shop owes "
        "(the money-out payments of all lines, shipping included), in the note's currency, and when it was released.",
    ),
    "provider_refunds": (
        [["raw", "payment_refunds"]],
        "Refunds the payment provider sent, created by the end of the business date, with the status the run read "
        "and the order and credit note the shop's integration named.",
    ),
    "stock_adjustment_lines": (
        [["raw", "wms_stock_adjustments"], ["raw", "wms_stock_adjustment_lines"], ["core", "wms_returns"]],
        "Warehouse stock adjustments per SKU with their net change to sellable stock, tied to the return they restock.",
    ),
    "stock_levels": (
        [["raw", "wms_stocks"], ["raw", "oc_products"]],
        "Sellable stock per SKU in the warehouse and in the shop, as read by the run.",
    ),
}


def build_core_asset(table: str, deps: list, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["core", table],
        deps=deps,
        kinds={"duckdb", "sql"},
        partitions_def=daily_partitions,
        group_name="canonical",
        pool=WAREHOUSE_POOL,
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
               recon_config: ReconConfigResource) -> dg.MaterializeResult:
        d = business_date_of(context)
        cfg = recon_config.load()
        with rebuilding(warehouse, f"core.{table}", d, cfg.working_dates, context.run_id) as con:
            rows = rebuild(con, "core", table, d, cfg)
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows),
                                              "sql": f"sql/core/build_{table}.sql"})

    return _asset


core_assets = [build_core_asset(t, deps, desc) for t, (deps, desc) in CORE_ASSETS.items()]

defs = dg.Definitions(assets=core_assets)
