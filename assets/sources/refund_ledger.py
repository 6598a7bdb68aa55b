"""Refund ledger source asset: the OMS refund messages, one row per credit note version and order line.

Incremental: the warehouse keeps a manifest of the archive's files (path, size, mtime, sha256)
and what each one yields; a run parses only the files that are new or whose content changed,
forgets what a removed file gave, and resolves again only the credit notes those files name
(``pipelines.resources.refund_files`` decides what to read, ``pipelines.resources.refund_store``
stores it). The versions are stored once, not per business date: ``raw.refund_lines`` is the
archive as it is at the run, every distinct version of a credit note with its version date, and
the reconciliation of a date takes, per credit note, the latest version dated up to its as-of
time. The date's ``recon.rejects`` rows of the ledger list every current reject, from files read
earlier too.
"""

import dagster as dg
import polars as pl

from pipelines.partitions import SOURCE_FRESHNESS, WAREHOUSE_POOL, business_date_of, daily_partitions, utc_now
from pipelines.resources import refund_store
from pipelines.resources.refund_files import plan
from pipelines.resources.refund_ledger import SKIPPED_LISTED, SOURCE, LedgerStats, RefundLedgerResource
from pipelines.retention import assert_writable
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
                "messages are in recon.rejects, with their credit note and order when readable. Read "
                "incrementally (only new or changed files; state.refund_ledger_files is the manifest) and stored "
                "once, not per business date: every date reads the archive as the latest run found it.",
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def refund_lines(context: dg.AssetExecutionContext, refund_ledger: RefundLedgerResource,
                 warehouse: WarehouseResource) -> dg.MaterializeResult:
    """Reads the *.jsonl / *.jsonl.gz files of the refund message archive (subfolders too) that
    are new or changed since the last run and stores the refund lines of every credit note version."""
    d = business_date_of(context)
    context.log.info(f"refund ledger for {d}: scanning {refund_ledger.path}")
    found, skipped = refund_ledger.scan()
    with warehouse.connection() as con:
        known = refund_store.manifest(con)
    todo = plan(found, known)
    reads = [(state, refund_ledger.read_file(state.path, path)) for state, path in todo.to_read]
    read = LedgerStats()
    for _, r in reads:
        for name in ("files", "lines", "messages", "refund_messages", "ignored_other_methods"):
            setattr(read, name, getattr(read, name) + getattr(r.stats, name))
    with warehouse.transaction() as con:
        assert_writable(con, d)
        change = refund_store.update(con, d, utc_now(), reads, todo.touched, todo.removed)
        rejects = refund_store.current_rejects(con).with_columns(business_date=pl.lit(d))
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)
        totals = refund_store.totals(con)
    context.log.info(
        f"refund ledger for {d}: {len(todo.to_read)} file(s) read ({todo.new} new), {len(todo.unchanged)} unchanged, "
        f"{len(todo.touched)} touched (same content), {len(todo.removed)} removed, {len(skipped)} skipped; "
        f"{read.lines} lines, {read.refund_messages} refund messages read, {read.ignored_other_methods} other "
        f"messages ignored; {change.versions_added} versions added, {change.versions_removed} removed; now "
        f"{totals['rows']} refund lines of {totals['versions']} versions of {totals['credit_notes']} credit notes "
        f"({totals['duplicates_collapsed']} identical redeliveries collapsed), {rejects.height} rejects")
    if skipped:
        context.log.info(
            f"refund ledger: {len(skipped)} file(s) skipped (not *.jsonl / *.jsonl.gz), e.g. "
            + ", ".join(f"{path} ({why})" for path, why in skipped[:5]))
    if not found:
        context.log.warning(f"refund ledger: no *.jsonl or *.jsonl.gz file in {refund_ledger.path}")
    if rejects.height:
        context.log.warning(f"refund ledger: {rejects.height} line(s) rejected, e.g. "
                            f"{rejects['record_key'][0]}: {rejects['reason'][0]}")
    counts = {
        "files_read": len(todo.to_read),          # parsed by this run (new or changed content)
        "files_new": todo.new,
        "files_unchanged": len(todo.unchanged),   # same size and mtime: not opened
        "files_touched": len(todo.touched),       # size or mtime changed, same sha256: not parsed
        "files_removed": len(todo.removed),       # their versions and rejects forgotten
        "files_skipped": len(skipped),            # not *.jsonl / *.jsonl.gz
        "files": totals["files"],                 # in the archive (manifest) after the run
        "lines_read": read.lines,                 # of the files read
        "messages": read.messages,
        "refund_messages": read.refund_messages,
        "ignored_other_methods": read.ignored_other_methods,
        "versions_added": change.versions_added,
        "versions_removed": change.versions_removed,
        "credit_notes_resolved": change.credit_notes_resolved,
        "credit_notes": totals["credit_notes"],   # in force, whole archive
        "versions": totals["versions"],
        "duplicates_collapsed": totals["duplicates_collapsed"],
        "rejects": rejects.height,                # every current reject (the date's recon.rejects rows)
    }
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(totals["rows"]),
        **{name: dg.MetadataValue.int(value) for name, value in counts.items()},
    }
    if rejects.height:
        preview = ["| record | reason |", "|---|---|"]
        for key, reason in rejects.select("record_key", "reason").head(20).iter_rows():
            preview.append(f"| {key} | {str(reason).replace('|', '/')} |")
        metadata["rejects_preview"] = dg.MetadataValue.md("\n".join(preview))
    if skipped:
        listed = [f"- {path}: {why}" for path, why in skipped[:SKIPPED_LISTED]]
        if len(skipped) > SKIPPED_LISTED:
            listed.append(f"- ... and {len(skipped) - SKIPPED_LISTED} more")
        metadata["skipped_files"] = dg.MetadataValue.md("\n".join(listed))
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[refund_lines])
