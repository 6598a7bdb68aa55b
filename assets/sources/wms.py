"""WMS (OPLOG.ONE-style API) source assets: returns, tracking probes, stock adjustments, stock levels.

Returns are polled per state, incrementally on ``updatedAt``: the window starts at the
highest ``updatedAt`` stored by earlier business dates minus an overlap, so a rerun of a
date asks the same window again and a quiet day costs a handful of requests. A first run
(or a backfill older than anything stored) asks for everything updated within
``initial_lookback_days`` before T. A final sweep re-reads what changed while paging.
Duplicates (overlaps, sweeps, records moving between states) collapse to the latest
``updatedAt`` per return.
"""

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import dagster as dg
import polars as pl

from pipelines.partitions import (SOURCE_FRESHNESS, WAREHOUSE_POOL, as_of, business_date_of,
                                  daily_partitions, utc_now)
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.resources.wms import WmsClient, WmsClientResource

WMS_STATES = ("ReturnCreated", "ArrivedToWarehouse", "Completed")
RETURNS_WITH_ITEMS = "/Returns/returnsWithLineItems"

RETURN_SCHEMA = {
    "return_reference": pl.Utf8, "source": pl.Utf8, "sales_order_channel": pl.Utf8,
    "order_reference": pl.Utf8, "state": pl.Utf8, "tracking_id": pl.Utf8, "cargo_carrier": pl.Utf8,
    "created_at": pl.Datetime("us"), "updated_at": pl.Datetime("us"), "arrived_at": pl.Datetime("us"),
    "completed_at": pl.Datetime("us"), "courier_request": pl.Utf8, "tag": pl.Utf8,
}
LINE_ITEM_SCHEMA = {
    "return_reference": pl.Utf8, "return_updated_at": pl.Datetime("us"), "line_item_reference": pl.Utf8,
    "sku": pl.Utf8, "processed_at": pl.Datetime("us"), "state": pl.Utf8, "damaged_state": pl.Utf8,
    "serial_number": pl.Utf8,
}
REJECT_SCHEMA = {"source": pl.Utf8, "record_key": pl.Utf8, "reason": pl.Utf8, "payload": pl.Utf8,
                 "order_reference": pl.Utf8, "return_reference": pl.Utf8}
UNIT_STATES = ("WaitingToBeProcessed", "Missing", "Damaged", "Undamaged")


def parse_ts(value: Any) -> datetime | None:
    """ISO-8601 UTC (``2024-02-23T11:11:18.810942Z``) -> naive UTC datetime; None stays None."""
    if value in (None, ""):
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def returns_to_frames(items: Iterable[dict], source: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """API return records -> (returns, line items, rejects). Unparsable records are rejected, not dropped."""
    returns: list[dict] = []
    lines: list[dict] = []
    rejects: list[dict] = []
    for item in items:
        ref = item.get("returnReferenceNumber")
        try:
            if not ref:
                raise ValueError("missing returnReferenceNumber")
            row = {
                "return_reference": str(ref),
                "source": item.get("source"),
                "sales_order_channel": item.get("salesOrderChannel"),
                "order_reference": _str(item.get("salesOrderReferenceNumber")),
                "state": item.get("state"),
                "tracking_id": _str(item.get("trackingId")),
                "cargo_carrier": item.get("cargoCarrier"),
                "created_at": _ts(item, "createdAt"),
                "updated_at": _ts(item, "updatedAt"),
                "arrived_at": _ts(item, "arrivedToWarehouseAt"),
                "completed_at": _ts(item, "completedAt"),
                "courier_request": item.get("courierRequest"),
                "tag": item.get("tag"),
            }
            if row["created_at"] is None or row["updated_at"] is None:
                raise ValueError("missing createdAt/updatedAt")
            item_rows = []
            for li in item.get("lineItems") or []:
                if not li.get("lineItemReferenceNumber") or not li.get("sku"):
                    raise ValueError("line item without lineItemReferenceNumber or sku")
                if li.get("state") not in UNIT_STATES:
                    # an unknown grade cannot be counted: the return is kept aside, the others load
                    raise ValueError(f"line item {li.get('lineItemReferenceNumber')} has an unknown state "
                                     f"{str(li.get('state'))[:40]!r}")
                item_rows.append({
                    "return_reference": str(ref),
                    "return_updated_at": row["updated_at"],
                    "line_item_reference": str(li["lineItemReferenceNumber"]),
                    "sku": str(li["sku"]),
                    "processed_at": _ts(li, "processedAt"),
                    "state": li.get("state"),
                    "damaged_state": li.get("damagedState"),
                    "serial_number": _str(li.get("serialNumber")),
                })
        except ValueError as exc:
            rejects.append({"source": source, "record_key": str(ref), "reason": str(exc).splitlines()[0],
                            "payload": json.dumps(_without_notes(item), default=str)[:2000],
                            "order_reference": _grain(item.get("salesOrderReferenceNumber")),
                            "return_reference": _grain(ref)})
            continue
        returns.append(row)
        lines.extend(item_rows)
    return (pl.DataFrame(returns, schema=RETURN_SCHEMA), pl.DataFrame(lines, schema=LINE_ITEM_SCHEMA),
            pl.DataFrame(rejects, schema=REJECT_SCHEMA))


def _ts(record: dict, field: str) -> datetime | None:
    try:
        return parse_ts(record.get(field))
    except ValueError:
        raise ValueError(f"{field} is not an ISO-8601 timestamp: {record.get(field)!r}") from None


def _str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _grain(value: Any) -> str | None:
    """A key a reject names, when it is readable as one (else None)."""
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else None


def _instant(value: Any) -> datetime | None:
    try:
        return parse_ts(value)
    except (TypeError, ValueError):
        return None


def _without_notes(item: dict) -> dict:
    # Warehouse notes are free text and may name the customer: never stored.
    return {k: v for k, v in item.items() if k != "notes"}


def collapse_latest(items: Iterable[dict]) -> list[dict]:
    """One record per returnReferenceNumber: the latest updatedAt, compared as instants (0 to 6
    fractional digits); the last one seen on ties. An unparsable updatedAt sorts first (its record
    is rejected later, unless a parsable version wins)."""
    best: dict[str, tuple[datetime, dict]] = {}
    floor = datetime.min
    for item in items:
        ref = item.get("returnReferenceNumber")
        when = _instant(item.get("updatedAt")) or floor
        current = best.get(ref)
        if current is None or when >= current[0]:
            best[ref] = (when, item)
    return [item for _, item in best.values()]


def poll_returns(client: WmsClient, lower_bound: datetime, overlap: timedelta,
                 log: Any = None) -> tuple[list[dict], int]:
    """Every return updated since ``lower_bound``, per state, then a sweep of what moved meanwhile."""
    collected: list[dict] = []
    sort = [("createdAt", "asc"), ("returnReferenceNumber", "asc")]
    for state in WMS_STATES:
        before = len(collected)
        for page in client.iter_pages(RETURNS_WITH_ITEMS, [("eq", "state", state),
                                                           ("gtoe", "updatedAt", iso(lower_bound))], sort):
            collected.extend(page)
        if log:
            log.info(f"WMS poll {state}: {len(collected) - before} records since {iso(lower_bound)}")
    swept = 0
    if collected:
        newest = max((t for t in (_instant(i.get("updatedAt")) for i in collected) if t), default=lower_bound)
        sweep_from = max(lower_bound, newest - overlap)
        for page in client.iter_pages(RETURNS_WITH_ITEMS, [("gtoe", "updatedAt", iso(sweep_from))],
                                      [("updatedAt", "asc"), ("returnReferenceNumber", "asc")]):
            collected.extend(page)
            swept += len(page)
    return collapse_latest(collected), swept


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_returns"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="Warehouse return records (one per return) as the WMS reports them: state, "
                                 "order reference, tracking number and arrival/completion times."),
        dg.AssetSpec(["raw", "wms_return_line_items"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="One row per physical unit the warehouse logged in a return, with its "
                                 "inspection grade (Undamaged, Damaged, Missing, or still waiting)."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_returns(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                recon_config: ReconConfigResource):
    """Polls the WMS for returns per state, incrementally on updatedAt."""
    d = business_date_of(context)
    cfg = recon_config.load().wms
    overlap = timedelta(minutes=cfg.get("poll_overlap_minutes", 60))
    with warehouse.connection() as con:
        watermark = con.execute("SELECT max(updated_at) FROM raw.wms_returns WHERE business_date < $d",
                                {"d": d}).fetchone()[0]
    if watermark is None:
        lower = as_of(d) - timedelta(days=cfg.get("initial_lookback_days", 3650))
        mode = "full"
    else:
        lower = watermark - overlap
        mode = "incremental"
    context.log.info(f"WMS returns for {d}: {mode} poll from {iso(lower)}")
    fetched_at = utc_now()
    with wms.client(cfg, logger=context.log) as client:
        items, swept = poll_returns(client, lower, overlap, context.log)
        stats = client.stats
    returns, lines, rejects = returns_to_frames(items, "wms_returns")
    returns = returns.with_columns(business_date=pl.lit(d), fetched_via=pl.lit("poll"), fetched_at=pl.lit(fetched_at))
    lines = lines.with_columns(business_date=pl.lit(d))
    rejects = rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_returns", d, returns)
        warehouse.replace_partition(con, "raw.wms_return_line_items", d, lines)
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source="wms_returns")
    context.log.info(f"WMS returns for {d}: {returns.height} returns, {lines.height} units, "
                     f"{stats.requests} requests, {stats.responses_429} x 429")
    common = {**stats.as_metadata(), "poll_mode": mode, "poll_from": iso(lower), "sweep_items": swept,
              "rejects": rejects.height}
    yield dg.MaterializeResult(asset_key=["raw", "wms_returns"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(returns.height), **common})
    yield dg.MaterializeResult(asset_key=["raw", "wms_return_line_items"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})


PROBE_CANDIDATES_SQL = """
WITH tracking AS (
    SELECT return_id, arg_max(tracking_id, date_added) AS tracking_id
    FROM raw.oc_return_history
    WHERE business_date = $d AND tracking_id IS NOT NULL AND date_added < $t
    GROUP BY return_id
),
known AS (
    SELECT return_reference, tracking_id FROM raw.wms_returns WHERE business_date <= $d AND created_at < $t
)
SELECT 'RMA-' || r.return_id AS rma_reference, tr.tracking_id
FROM raw.oc_returns r
JOIN tracking tr USING (return_id)
WHERE r.business_date = $d AND r.date_added < $t
  AND lower(coalesce(r.return_status_name, '')) NOT IN (SELECT unnest($closed_names))
  AND NOT EXISTS (SELECT 1 FROM known k WHERE k.return_reference = 'RMA-' || r.return_id)
  AND NOT EXISTS (SELECT 1 FROM known k WHERE k.tracking_id = tr.tracking_id)
  AND NOT EXISTS (SELECT 1 FROM raw.wms_tracking_probe_log p
                  WHERE p.rma_reference = 'RMA-' || r.return_id AND p.tracking_id = tr.tracking_id
                    AND p.business_date < $d AND p.business_date > $d - CAST($cooldown AS INTEGER))
ORDER BY r.date_added DESC, r.return_id DESC
LIMIT $limit
"""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_probed_returns"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     deps=[["raw", "wms_returns"], ["raw", "oc_returns"], ["raw", "oc_return_history"]],
                     description="Warehouse returns found by looking up the tracking number of storefront "
                                 "RMAs that matched no polled return (parcels filed under another order)."),
        dg.AssetSpec(["raw", "wms_probed_return_line_items"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Units of the returns found by tracking-number probes."),
        dg.AssetSpec(["raw", "wms_tracking_probe_log"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Every tracking-number probe made and how many returns it found; an RMA is "
                                 "not probed again within the cooldown."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_tracking_probes(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                        recon_config: ReconConfigResource):
    """GET /Returns?trackingId=... for RMAs with a tracking number that no polled WMS return explains."""
    d = business_date_of(context)
    cfg = recon_config.load()
    # RMAs refused or withdrawn need no parcel: every storefront name mapped to those statuses.
    closed_names = [k for k, v in cfg.rma_status_map.items() if v in ("REJECTED", "CANCELED")] or ["-"]
    limit = int(cfg.wms.get("max_tracking_probes", 500))
    cooldown = int(cfg.wms.get("probe_cooldown_days", 7))
    with warehouse.connection() as con:
        candidates = con.execute(PROBE_CANDIDATES_SQL, {
            "d": d, "t": as_of(d), "limit": limit, "closed_names": closed_names,
            "cooldown": cooldown,
        }).fetchall()
    context.log.info(f"Tracking probes for {d}: {len(candidates)} RMA(s) with an unexplained tracking number")
    found: list[dict] = []
    log_rows: list[dict] = []
    fetched_at = utc_now()
    with wms.client(cfg.wms, logger=context.log) as client:
        for i, (rma_reference, tracking_id) in enumerate(candidates, 1):
            hits = 0
            for summary in client.find_returns_by_tracking(tracking_id):
                full = client.get_return(summary["returnReferenceNumber"])
                if full is not None:
                    hits += 1
                    found.append({**full, "_rma": rma_reference, "_tracking": tracking_id})
            log_rows.append({"rma_reference": rma_reference, "tracking_id": tracking_id, "returns_found": hits,
                             "probed_at": fetched_at})
            if i % 100 == 0:
                context.log.info(f"Tracking probes: {i}/{len(candidates)} done, {len(found)} returns found")
        stats = client.stats
    probe_of = {f["returnReferenceNumber"]: (f["_rma"], f["_tracking"]) for f in found}
    returns, lines, rejects = returns_to_frames(collapse_latest(found), "wms_tracking_probes")
    returns = returns.with_columns(
        business_date=pl.lit(d), fetched_at=pl.lit(fetched_at),
        probed_for_rma=pl.col("return_reference").map_elements(lambda r: probe_of[r][0], return_dtype=pl.Utf8),
        probed_tracking_id=pl.col("return_reference").map_elements(lambda r: probe_of[r][1], return_dtype=pl.Utf8),
    )
    lines = lines.with_columns(business_date=pl.lit(d))
    rejects = rejects.with_columns(business_date=pl.lit(d))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_probed_returns", d, returns)
        warehouse.replace_partition(con, "raw.wms_probed_return_line_items", d, lines)
        warehouse.replace_partition(con, "raw.wms_tracking_probe_log", d, pl.DataFrame(
            log_rows, schema={"rma_reference": pl.Utf8, "tracking_id": pl.Utf8, "returns_found": pl.Int32,
                              "probed_at": pl.Datetime("us")}).with_columns(business_date=pl.lit(d)))
        warehouse.replace_partition(con, "recon.rejects", d, rejects, source="wms_tracking_probes")
    yield dg.MaterializeResult(asset_key=["raw", "wms_probed_returns"], metadata={
        "dagster/row_count": dg.MetadataValue.int(returns.height), "probes": len(candidates),
        **stats.as_metadata()})
    yield dg.MaterializeResult(asset_key=["raw", "wms_probed_return_line_items"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})
    yield dg.MaterializeResult(asset_key=["raw", "wms_tracking_probe_log"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(len(log_rows))})


ADJUSTMENT_SCHEMA = {"adjustment_id": pl.Utf8, "transaction_number": pl.Utf8, "transaction_type": pl.Utf8,
                     "completed_at": pl.Datetime("us"), "tag": pl.Utf8}
ADJUSTMENT_LINE_SCHEMA = {"transaction_number": pl.Utf8, "line_id": pl.Utf8, "product_name": pl.Utf8, "sku": pl.Utf8,
                          "lost_amount": pl.Int32, "found_amount": pl.Int32, "put_in_quarantine_amount": pl.Int32,
                          "release_from_quarantine_amount": pl.Int32}
AMOUNT_FIELDS = {"lost_amount": "lostAmount", "found_amount": "foundAmount",
                 "put_in_quarantine_amount": "putInQuarantineAmount",
                 "release_from_quarantine_amount": "releaseFromQuarantineAmount"}


def adjustments_to_frames(items: Iterable[dict]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    heads, lines, rejects = [], [], []
    for item in items:
        number = item.get("transactionNumber")
        try:
            if not number:
                raise ValueError("missing transactionNumber")
            head = {"adjustment_id": _str(item.get("id")), "transaction_number": str(number),
                    "transaction_type": item.get("transactionType"), "completed_at": _ts(item, "completedAt"),
                    "tag": _str(item.get("tag"))}
            rows = []
            for li in item.get("lineItems") or []:
                row = {"transaction_number": str(number), "line_id": _str(li.get("id")),
                       "product_name": li.get("productName"), "sku": _str(li.get("sku"))}
                for col, field in AMOUNT_FIELDS.items():
                    value = li.get(field, 0)
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ValueError(f"{field} is not an integer: {value!r}")
                    row[col] = value
                if not row["sku"]:
                    raise ValueError("adjustment line without sku")
                rows.append(row)
        except ValueError as exc:
            rejects.append({"source": "wms_stock_adjustments", "record_key": str(number), "reason": str(exc),
                            "payload": json.dumps(item, default=str)[:2000], "order_reference": None,
                            "return_reference": _grain(item.get("tag"))})
            continue
        heads.append(head)
        lines.extend(rows)
    return (pl.DataFrame(heads, schema=ADJUSTMENT_SCHEMA), pl.DataFrame(lines, schema=ADJUSTMENT_LINE_SCHEMA),
            pl.DataFrame(rejects, schema=REJECT_SCHEMA))


@dg.multi_asset(
    specs=[
        dg.AssetSpec(["raw", "wms_stock_adjustments"], kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
                     description="Warehouse stock adjustment transactions (restocks, losses, quarantine moves); "
                                 "a return's restock is tagged with its return reference."),
        dg.AssetSpec(["raw", "wms_stock_adjustment_lines"], kinds={"api", "duckdb"},
                     freshness_policy=SOURCE_FRESHNESS,
                     description="Per-SKU unit changes of each stock adjustment."),
    ],
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
)
def wms_stock_adjustments(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
                          recon_config: ReconConfigResource):
    """Adjustments are completed transactions: fetched incrementally on completedAt, with an overlap."""
    d = business_date_of(context)
    cfg = recon_config.load().wms
    overlap = timedelta(minutes=cfg.get("poll_overlap_minutes", 60))
    with warehouse.connection() as con:
        watermark = con.execute("SELECT max(completed_at) FROM raw.wms_stock_adjustments WHERE business_date < $d",
                                {"d": d}).fetchone()[0]
    lower = (watermark - overlap) if watermark else as_of(d) - timedelta(days=cfg.get("initial_lookback_days", 3650))
    with wms.client(cfg, logger=context.log) as client:
        items = client.fetch_all("/StockAdjustments", [("gtoe", "completedAt", iso(lower))],
                                 [("completedAt", "asc"), ("transactionNumber", "asc")], key="transactionNumber")
        stats = client.stats
    heads, lines, rejects = adjustments_to_frames(items)
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_stock_adjustments", d, heads.with_columns(business_date=pl.lit(d)))
        warehouse.replace_partition(con, "raw.wms_stock_adjustment_lines", d, lines.with_columns(business_date=pl.lit(d)))
        warehouse.replace_partition(con, "recon.rejects", d, rejects.with_columns(business_date=pl.lit(d)),
                                    source="wms_stock_adjustments")
    yield dg.MaterializeResult(asset_key=["raw", "wms_stock_adjustments"], metadata={
        "dagster/row_count": dg.MetadataValue.int(heads.height), "poll_from": iso(lower),
        "rejects": rejects.height, **stats.as_metadata()})
    yield dg.MaterializeResult(asset_key=["raw", "wms_stock_adjustment_lines"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})


STOCK_FIELDS = {"total_stock_amount": "totalStockAmount", "available_stock": "availableStock",
                "reserved_stock": "reservedStock", "received_item_amount": "receivedItemAmount",
                "damaged_item_amount": "damagedItemAmount", "expired_amount": "expiredAmount",
                "lost_item_amount": "lostItemAmount"}


@dg.asset(
    key=["raw", "wms_stocks"],
    kinds={"api", "duckdb"}, freshness_policy=SOURCE_FRESHNESS,
    partitions_def=daily_partitions,
    group_name="sources",
    pool=WAREHOUSE_POOL,
    description="Warehouse stock per SKU as read during the run (availableStock is what can be sold now).",
)
def wms_stocks(context: dg.AssetExecutionContext, wms: WmsClientResource, warehouse: WarehouseResource,
               recon_config: ReconConfigResource) -> dg.MaterializeResult:
    d = business_date_of(context)
    cfg = recon_config.load().wms
    read_at = utc_now()
    with wms.client(cfg, logger=context.log) as client:
        items = client.fetch_all("/Stocks", [], [("sku", "asc")], key="sku")
        stats = client.stats
    rows, rejects = [], []
    for item in items:
        try:
            if not item.get("sku"):
                raise ValueError("missing sku")
            row = {"sku": str(item["sku"]), "name": item.get("name"), "updated_at": _ts(item, "updatedAt")}
            for col, field in STOCK_FIELDS.items():
                value = item.get(field)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f"{field} is not an integer: {value!r}")
                row[col] = value
            rows.append(row)
        except ValueError as exc:
            rejects.append({"source": "wms_stocks", "record_key": str(item.get("sku")), "reason": str(exc),
                            "payload": json.dumps(item, default=str)[:2000], "order_reference": None,
                            "return_reference": None})
    schema = {"sku": pl.Utf8, "name": pl.Utf8, "updated_at": pl.Datetime("us"),
              **{c: pl.Int64 for c in STOCK_FIELDS}}
    frame = pl.DataFrame(rows, schema=schema).with_columns(business_date=pl.lit(d), read_at=pl.lit(read_at))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_stocks", d, frame)
        warehouse.replace_partition(con, "recon.rejects", d,
                                    pl.DataFrame(rejects, schema=REJECT_SCHEMA).with_columns(business_date=pl.lit(d)),
                                    source="wms_stocks")
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(frame.height),
                                          "rejects": len(rejects), **stats.as_metadata()})


defs = dg.Definitions(assets=[wms_returns, wms_tracking_probes, wms_stock_adjustments, wms_stocks])
