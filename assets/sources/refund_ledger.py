"""Refund ledger source asset: the OMS refund messages, one row per credit note and order line.

The whole archive is read on every run (messages are redelivered across files, so a credit
note can only be deduplicated against all of them) and stored under the business date,
replacing that date's rows; the reconciliation keeps only refunds dated up to its as-of time.
"""

import dagster as dg
import polars as pl

from pipelines.partitions import SOURCE_FRESHNESS, WAREHOUSE_POOL, business_date_of, daily_partitions
from pipelines.resources.refund_ledger import SOURCE, RefundLedgerResource
from pipelines.resources.warehouse import WarehouseResource


@dg.asset(
    key=["raw", "refund_lines"],
    kinds={"json", "duckdb"},
    freshness_policy=SOURCE_FRESHNESS,
    description="Refunds issued by the order management system: one row per credit note and order line "
                "(or SHIPPING), with the amount actually paid back (payments marked REFUNDED), the total of "
                "the credit note line, its status and dates. A message delivered several times counts once "
                "(delivery_count says how often it came); unreadable messages are in recon.rejects.",
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def refund_lines(context: dg.AssetExecutionContext, refund_ledger: RefundLedgerResource,
                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Reads every *.jsonl file of the refund message archive and stores the refund lines."""
    d = business_date_of(context)
    context.log.info(f"refund ledger for {d}: reading {refund_ledger.path}")
    ledger = refund_ledger.read_ledger()
    stats = ledger.stats
    context.log.info(
        f"refund ledger: {stats.files} files, {stats.lines} lines, {stats.refund_messages} refund messages, "
        f"{stats.credit_notes} credit notes ({stats.duplicates_collapsed} redeliveries collapsed), "
        f"{stats.ignored_other_methods} other messages ignored, {stats.rejects} rejected")
    if stats.files == 0:
        context.log.warning(f"refund ledger: no *.jsonl file in {refund_ledger.path}")
    lines = ledger.refund_lines.with_columns(business_date=pl.lit(d))
    rejects = ledger.rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.refund_lines", d, lines)
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)
    context.log.info(f"refund ledger for {d} stored: {lines.height} refund lines, {rejects.height} rejects")
    if rejects.height:
        context.log.warning(f"refund ledger: {rejects.height} line(s) rejected, e.g. "
                            f"{rejects['record_key'][0]}: {rejects['reason'][0]}")
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(lines.height),
        **{name: dg.MetadataValue.int(value) for name, value in stats.as_metadata().items()},
    }
    if rejects.height:
        preview = ["| record | reason |", "|---|---|"]
        for key, reason in rejects.select("record_key", "reason").head(20).iter_rows():
            preview.append(f"| {key} | {str(reason).replace('|', '/')} |")
        metadata["rejects_preview"] = dg.MetadataValue.md("\n".join(preview))
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[refund_lines])
