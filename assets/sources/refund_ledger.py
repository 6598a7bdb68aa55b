"""Refund ledger source asset: the OMS refund messages, one row per credit note version and order line.

The whole archive is read on every run (messages are redelivered across files, so a credit
note's versions can only be told apart against all of them) and stored under the business
date, replacing that date's rows. Every distinct version of a credit note is kept with its
version date; the reconciliation takes, per credit note, the latest version dated up to its
as-of time.
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
    description="Refunds issued by the order management system: one row per credit note version and order "
                "line (or SHIPPING), with the exact amount actually paid back (payments marked REFUNDED), the "
                "total of the credit note line, its status and dates. Every distinct version of a credit note "
                "is kept with its version_date (status date, else credit note date); an identical message "
                "delivered several times is one version (delivery_count says how often it came); unreadable "
                "messages are in recon.rejects, with their credit note and order when readable.",
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def refund_lines(context: dg.AssetExecutionContext, refund_ledger: RefundLedgerResource,
                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Reads every *.jsonl / *.jsonl.gz file of the refund message archive (subfolders too) and stores
    the refund lines of every credit note version."""
    d = business_date_of(context)
    context.log.info(f"refund ledger for {d}: reading {refund_ledger.path}")
    ledger = refund_ledger.read_ledger()
    stats = ledger.stats
    context.log.info(
        f"refund ledger: {stats.files} files ({stats.files_skipped} skipped), {stats.lines} lines, "
        f"{stats.refund_messages} refund messages, {stats.versions} versions of {stats.credit_notes} credit notes "
        f"({stats.duplicates_collapsed} identical redeliveries collapsed), "
        f"{stats.ignored_other_methods} other messages ignored, {stats.rejects} rejected")
    if stats.files_skipped:
        context.log.info(
            f"refund ledger: {stats.files_skipped} file(s) skipped (not *.jsonl / *.jsonl.gz), e.g. "
            + ", ".join(f"{path} ({why})" for path, why in stats.skipped[:5]))
    if stats.files == 0:
        context.log.warning(f"refund ledger: no *.jsonl or *.jsonl.gz file in {refund_ledger.path}")
    lines = ledger.refund_lines.with_columns(business_date=pl.lit(d))
    rejects = ledger.rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.refund_lines", d, lines)
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)
    context.log.info(f"refund ledger for {d} stored: {lines.height} refund lines of {stats.versions} versions "
                     f"of {stats.credit_notes} credit notes, {rejects.height} rejects")
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
    if stats.skipped:
        listed = [f"- {path}: {why}" for path, why in stats.skipped]
        if stats.files_skipped > len(stats.skipped):
            listed.append(f"- ... and {stats.files_skipped - len(stats.skipped)} more")
        metadata["skipped_files"] = dg.MetadataValue.md("\n".join(listed))
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[refund_lines])
