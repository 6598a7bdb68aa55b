"""Finance export: the morning file of open discrepancies, its Parquet copy and the trend chart."""
import base64

import dagster as dg

from pipelines.export import write_export
from pipelines.movement import figures_markdown
from pipelines.partitions import WAREHOUSE_POOL, business_date_of, daily_partitions
from pipelines.reconcile import summary, summary_markdown
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.exports import ExportDirResource
from pipelines.resources.warehouse import WarehouseResource


@dg.asset(
    key=["exports", "finance_export"],
    deps=[["recon", "discrepancies"]],
    kinds={"csv", "parquet", "excel"},
    partitions_def=daily_partitions,
    group_name="exports",
    pool=WAREHOUSE_POOL,
    description="What finance opens each morning: <exports>/<date>/discrepancies.xlsx (summary, open "
                "discrepancies with editable review columns, resolved today), discrepancies.csv (open "
                "discrepancies, highest amount first), a Parquet copy and trend.png (the last 30 business dates per rule).",
)
def finance_export(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                   export_dir: ExportDirResource, recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    currency = cfg.store_currency
    with warehouse.connection() as con:
        out = write_export(con, export_dir.root(), d, currency, cfg.severities)
        table = summary(con, d, currency)
    png = base64.b64encode(out["chart"].read_bytes()).decode()
    context.log.info(f"Finance export for {d}: {out['rows']} open discrepancies -> {out['csv']}")
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(out["rows"]),
        "csv": dg.MetadataValue.path(str(out["csv"])),
        "parquet": dg.MetadataValue.path(str(out["parquet"])),
        "workbook": dg.MetadataValue.path(str(out["workbook"])),
        "movement": dg.MetadataValue.md(figures_markdown(out["figures"], currency)),
        "ageing_and_movement": dg.MetadataValue.json(out["figures"].as_metadata()),
        "movement_text": dg.MetadataValue.text(out["figures"].text(currency)),
        "new_high": dg.MetadataValue.json(out["new_high"]),
        "chart_path": dg.MetadataValue.path(str(out["chart"])),
        "chart_series": dg.MetadataValue.json(out["chart_series"]),
        "summary": dg.MetadataValue.md(summary_markdown(table)),
        "trend": dg.MetadataValue.md(f"![open discrepancies and amount at risk per rule](data:image/png;base64,{png})"),
    })


defs = dg.Definitions(assets=[finance_export])
