"""Payment-provider source asset: the refunds the provider actually sent (sources.md section 4).

Polled incrementally over the Stripe-compatible API (pipelines/resources/payments.py): the window
is every refund created since the latest ``created`` stored by earlier business dates minus
``payments.payment_poll_overlap_hours``, widened to the last ``payment_status_lookback_days``
before T (their status may still change), up to T; a first run or a backfill before any stored
date reads ``initial_lookback_days``. Only versions that are new or changed are written (a quiet
day writes nothing); the status is the one read during the run (no history in the API).
"""
from datetime import timedelta

import dagster as dg
import polars as pl

from pipelines.partitions import SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of, daily_partitions, utc_now
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.payments import PaymentsResource, as_row, row_hash
from pipelines.resources.warehouse import WarehouseResource, insert_rows
from pipelines.retention import assert_writable

SOURCE = "payment_refunds"
RAW_COLUMNS = {"refund_id": pl.Utf8, "amount_minor": pl.Int64, "amount": pl.Decimal(38, 10), "currency": pl.Utf8,
               "created": pl.Datetime("us"), "status": pl.Utf8, "payment_intent": pl.Utf8, "charge": pl.Utf8,
               "reason": pl.Utf8, "failure_reason": pl.Utf8, "order_id": pl.Utf8, "credit_note_number": pl.Utf8}
REJECT_COLUMNS = {"record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8, "order_reference": pl.Utf8,
                  "credit_note_number": pl.Utf8}

WRITE_CHANGED = """
INSERT INTO raw.payment_refunds
SELECT $d, n.refund_id, n.amount_minor, n.amount, n.currency, n.created, n.status, n.payment_intent, n.charge,
       n.reason, n.failure_reason, n.order_id, n.credit_note_number, n.row_hash, $fetched_at
FROM _read n
LEFT JOIN raw.payment_refunds_at($previous) o ON o.refund_id = n.refund_id
WHERE o.row_hash IS DISTINCT FROM n.row_hash
   -- valid again after a date that rejected it: stored, so that the reject stops counting
   OR EXISTS (SELECT 1 FROM recon.rejects j
              WHERE j.source = 'payment_refunds' AND j.record_key = n.refund_id
                AND j.business_date < $d AND j.business_date >= o.business_date)
"""


def poll_window(latest_created, t, settings: dict[str, float]):
    """created >= the returned instant (sources.md section 4): the latest created stored by
    earlier dates minus the overlap, or the status re-read window, whichever starts first."""
    lookback = t - timedelta(days=settings["payment_status_lookback_days"])
    if latest_created is None:
        return t - timedelta(days=settings["initial_lookback_days"])
    return min(latest_created - timedelta(hours=settings["payment_poll_overlap_hours"]), lookback)


@dg.asset(
    key=["raw", "payment_refunds"],
    kinds={"stripe", "duckdb"},
    freshness_policy=SOURCE_FRESHNESS,
    description="Refunds the payment provider actually sent (Stripe-compatible API): amount exact in the "
                "currency's minor units and as a decimal, status as read by the run, the order and credit note "
                "the shop's integration put in the metadata. One row per new or changed version (business_date: "
                "the run that read it); refunds that fail validation are in recon.rejects. PAYMENTS_API_BASE=none "
                "disables the source: nothing is read and the payment rules find nothing for the date.",
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def payment_refunds(context: dg.AssetExecutionContext, payments: PaymentsResource, warehouse: WarehouseResource,
                    recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    t = as_of(d)
    if not payments.enabled:
        with warehouse.transaction() as con:
            assert_writable(con, d)
            con.execute("DELETE FROM state.payment_polls WHERE business_date = $d", {"d": d})
            total = con.execute("SELECT count(*) FROM raw.payment_refunds").fetchone()[0]
        context.log.info(f"payment provider disabled (PAYMENTS_API_BASE=none): not read for {d}")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(total), "enabled": False})
    settings = recon_config.load().payments
    with warehouse.connection() as con:
        latest = con.execute("SELECT max(created) FROM raw.payment_refunds WHERE business_date < $d",
                             {"d": d}).fetchone()[0]
    gte = poll_window(latest, t, settings)
    client = payments.client(max_network_retries=int(settings["max_retries"]), timeout_s=settings["timeout_seconds"])
    context.log.info(f"payment provider for {d}: refunds created {gte:%Y-%m-%d %H:%M} .. {t:%Y-%m-%d %H:%M} UTC "
                     f"from {client.api_base}")
    # created <= T: the API's bound is exclusive and in whole seconds
    read = client.read(gte, t + timedelta(seconds=1),
                       progress=lambda pages, n: context.log.debug(f"payment provider: page {pages}, {n} refunds"))
    rows, seen = [], set()
    for refund in read.refunds:  # one row per id (a provider listing an object twice changes nothing)
        if refund.id in seen:
            continue
        seen.add(refund.id)
        row = as_row(refund)
        row["row_hash"] = row_hash(row)
        rows.append(row)
    frame = pl.DataFrame(rows, schema={**RAW_COLUMNS, "row_hash": pl.Utf8})
    rejects = pl.DataFrame(read.rejects, schema=REJECT_COLUMNS).with_columns(
        source=pl.lit(SOURCE), business_date=pl.lit(d))
    fetched_at = utc_now()
    with warehouse.transaction() as con:
        assert_writable(con, d)
        con.execute("DELETE FROM raw.payment_refunds WHERE business_date = $d", {"d": d})
        con.register("_read", frame.to_arrow())
        try:
            con.execute(WRITE_CHANGED, {"d": d, "previous": d - timedelta(days=1), "fetched_at": fetched_at})
        finally:
            con.unregister("_read")
        written = con.execute("SELECT count(*) FROM raw.payment_refunds WHERE business_date = $d",
                              {"d": d}).fetchone()[0]
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source=SOURCE)
        con.execute("DELETE FROM state.payment_polls WHERE business_date = $d", {"d": d})
        insert_rows(con, "state.payment_polls", pl.DataFrame([{
            "business_date": d, "created_gte": gte, "created_lte": t, "refunds_read": len(rows),
            "versions_written": written, "rejects": rejects.height, "pages": read.pages, "fetched_at": fetched_at}]))
        total, by_status = con.execute(
            "SELECT count(*), list(status ORDER BY status) FROM raw.payment_refunds_at($d)", {"d": d}).fetchone()
    counts: dict[str, int] = {}
    for status in by_status or []:
        counts[status] = counts.get(status, 0) + 1
    context.log.info(f"payment provider for {d}: {len(rows)} refunds read in {read.pages} page(s), {written} new or "
                     f"changed versions written, {rejects.height} rejected; {total} refunds known")
    if rejects.height:
        context.log.warning(f"payment provider: {rejects.height} refund(s) rejected, e.g. "
                            f"{rejects['record_key'][0]}: {rejects['reason'][0]}")
    metadata = {
        "dagster/row_count": dg.MetadataValue.int(total),
        "enabled": True,
        "window_created_gte": gte.isoformat(),
        "window_created_lte": t.isoformat(),
        "refunds_read": len(rows),
        "pages": read.pages,
        "versions_written": written,
        "rejects": rejects.height,
        **{f"status/{k}": v for k, v in sorted(counts.items())},
    }
    if rejects.height:
        preview = ["| refund | reason |", "|---|---|"]
        for key, reason in rejects.select("record_key", "reason").head(20).iter_rows():
            preview.append(f"| {key} | {str(reason).replace('|', '/')} |")
        metadata["rejects_preview"] = dg.MetadataValue.md("\n".join(preview))
    return dg.MaterializeResult(metadata=metadata)


defs = dg.Definitions(assets=[payment_refunds])
