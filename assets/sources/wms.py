"""WMS (OPLOG.ONE-style API) source assets: returns, tracking probes, stock adjustments, stock levels.

Returns are polled per state, incrementally on ``updatedAt``: the window starts at the
highest ``updatedAt`` stored by earlier business dates minus an overlap, so a rerun of a
date asks the same window again and a quiet day costs a handful of requests. A first run
(or a backfill older than anything stored) asks for everything updated within
``initial_lookback_days`` before T. A final sweep re-reads what changed while paging.
Duplicates (overlaps, sweeps, records moving between states) collapse to the latest
``updatedAt`` per return. The watermark counts each stored row at ``least(updated_at,
fetched_at)``: a record dated in the future (a WMS clock ahead, a typo'd year) cannot push
the next window past everything that happens meanwhile (checks.wms_checks reports such rows).

Nothing from the API is trusted to have the documented shape: an item that is not a JSON
object, a ``lineItems`` that is not a list, a missing amount or completion time, a probe answer
without a reference -- each becomes a row of recon.rejects (reason, grain columns, and a
payload holding only the fields sources.md names: never ``notes`` or other free text).
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
NOT_AN_OBJECT = "item is not a JSON object"

# Reject payloads keep only what sources.md names (free text such as ``notes`` may name a customer).
RETURN_FIELDS = ("source", "returnReferenceNumber", "salesOrderChannel", "salesOrderReferenceNumber", "state",
                 "trackingId", "cargoCarrier", "createdAt", "updatedAt", "arrivedToWarehouseAt", "completedAt",
                 "courierRequest", "tag")
RETURN_LINE_FIELDS = ("lineItemReferenceNumber", "sku", "processedAt", "state", "damagedState", "serialNumber")
ADJUSTMENT_FIELDS = ("id", "transactionNumber", "transactionType", "completedAt", "tag")
ADJUSTMENT_LINE_FIELDS = ("id", "productName", "sku", "lostAmount", "foundAmount", "putInQuarantineAmount",
                          "releaseFromQuarantineAmount")
STOCK_PAYLOAD_FIELDS = ("id", "updatedAt", "sku", "name", "barcodes", "totalStockAmount", "availableStock",
                        "reservedStock", "receivedItemAmount", "damagedItemAmount", "expiredAmount", "lostItemAmount")


def _allowed(item: Any, fields: tuple[str, ...], lines: tuple[str, ...] | None = None) -> Any:
    """The allow-listed fields of a record (lineItems too); a non-object is shown as its JSON type."""
    if not isinstance(item, dict):
        return {"_type": _json_type(item)}
    out = {k: item[k] for k in fields if k in item}
    if lines is not None and "lineItems" in item:
        li = item["lineItems"]
        out["lineItems"] = ([{k: x[k] for k in lines if k in x} if isinstance(x, dict) else {"_type": _json_type(x)}
                             for x in li] if isinstance(li, list) else {"_type": _json_type(li)})
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else type(value).__name__


def _payload(item: Any, fields: tuple[str, ...], lines: tuple[str, ...] | None = None) -> str:
    return json.dumps(_allowed(item, fields, lines), default=str)[:2000]


def _not_an_object_reject(source: str, item: Any, index: int, fields: tuple[str, ...],
                          lines: tuple[str, ...] | None = None) -> dict:
    return {"source": source, "record_key": f"#{index}", "reason": NOT_AN_OBJECT,
            "payload": _payload(item, fields, lines), "order_reference": None, "return_reference": None}


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
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(_not_an_object_reject(source, item, index, RETURN_FIELDS, RETURN_LINE_FIELDS))
            continue
        ref = item.get("returnReferenceNumber")
        try:
            if not ref:
                raise ValueError("missing returnReferenceNumber")
            if _grain(ref) is None:
                raise ValueError(f"returnReferenceNumber is not a string (a JSON {_json_type(ref)})")
            row = {
                "return_reference": str(ref),
                "source": _text(item, "source"),
                "sales_order_channel": _text(item, "salesOrderChannel"),
                "order_reference": _text(item, "salesOrderReferenceNumber"),
                "state": _text(item, "state"),
                "tracking_id": _text(item, "trackingId"),
                "cargo_carrier": _text(item, "cargoCarrier"),
                "created_at": _ts(item, "createdAt"),
                "updated_at": _ts(item, "updatedAt"),
                "arrived_at": _ts(item, "arrivedToWarehouseAt"),
                "completed_at": _ts(item, "completedAt"),
                "courier_request": _text(item, "courierRequest"),
                "tag": _text(item, "tag"),
            }
            if row["created_at"] is None or row["updated_at"] is None:
                raise ValueError("missing createdAt/updatedAt")
            item_rows = []
            line_items = item.get("lineItems")
            if line_items is not None and not isinstance(line_items, list):
                raise ValueError(f"lineItems is not a list (a JSON {_json_type(line_items)})")
            for li in line_items or []:
                if not isinstance(li, dict):
                    raise ValueError(f"a line item is not a JSON object (a JSON {_json_type(li)})")
                if not li.get("lineItemReferenceNumber") or not li.get("sku"):
                    raise ValueError("line item without lineItemReferenceNumber or sku")
                if li.get("state") not in UNIT_STATES:
                    # an unknown grade cannot be counted: the return is kept aside, the others load
                    raise ValueError(f"line item {li.get('lineItemReferenceNumber')} has an unknown state "
                                     f"{str(li.get('state'))[:40]!r}")
                item_rows.append({
                    "return_reference": str(ref),
                    "return_updated_at": row["updated_at"],
                    "line_item_reference": _text(li, "lineItemReferenceNumber"),
                    "sku": _text(li, "sku"),
                    "processed_at": _ts(li, "processedAt"),
                    "state": li.get("state"),
                    "damaged_state": _text(li, "damagedState"),
                    "serial_number": _text(li, "serialNumber"),
                })
        except ValueError as exc:
            rejects.append({"source": source, "record_key": _grain(ref), "reason": str(exc).splitlines()[0],
                            "payload": _payload(item, RETURN_FIELDS, RETURN_LINE_FIELDS),
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


def _text(record: dict, field: str) -> str | None:
    """A text field: a JSON string or number as text, null or "" as None; an object, a list or a
    boolean is a bad record (a reject), never a value the frame cannot hold."""
    value = record.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{field} is not text (a JSON {_json_type(value)})")
    return str(value)


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


def collapse_latest(items: Iterable[dict]) -> list[dict]:
    """One record per returnReferenceNumber: the latest updatedAt, compared as instants (0 to 6
    fractional digits); the last one seen on ties. An unparsable updatedAt sorts first (its record
    is rejected later, unless a parsable version wins)."""
    best: dict[Any, tuple[datetime, Any]] = {}
    floor = datetime.min
    for index, item in enumerate(items):
        if not isinstance(item, dict):  # kept, each on its own, to be rejected
            best[("not an object", index)] = (floor, item)
            continue
        ref = item.get("returnReferenceNumber")
        if _grain(ref) is None:  # missing, empty or not a scalar: rejected later, never merged with another
            ref = ("unreadable reference", index)
        when = _instant(item.get("updatedAt")) or floor
        current = best.get(ref)
        if current is None or when >= current[0]:
            best[ref] = (when, item)
    return [item for _, item in best.values()]


def _paging_metadata(stats: Any, log: Any = None) -> dict[str, Any]:
    """Says whether paging had to run without ``dataSetCount`` (then it read until an empty page)."""
    without = int(getattr(stats, "pages_without_total", 0) or 0)
    meta: dict[str, Any] = {"paged_without_dataset_count": without > 0}
    if without:
        meta["paging_note"] = (f"{without} of {stats.pages} page(s) came without a usable dataSetCount: "
                               "paged until an empty page")
        if log:
            log.warning(f"WMS: {meta['paging_note']}")
    return meta


def fetch_keyed(client: WmsClient, path: str, filters: Any, sort: Any, key: str) -> list[Any]:
    """Every item of a paged endpoint, duplicates (page overlaps) collapsed by ``key`` keeping the
    last one seen; items that are not objects, or whose key is not a readable value, are kept
    one by one (to be rejected), never merged nor allowed to crash the collapse."""
    out: dict[Any, Any] = {}
    n = 0
    for page in client.iter_pages(path, filters, sort):
        for item in page:
            n += 1
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                out[("key", value)] = item
            else:
                out[("unkeyed", n)] = item
    return list(out.values())


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
        # capped at now: a record dated in the future must not move the sweep past what moved meanwhile
        newest = min(utc_now(), max((t for t in (_instant(i.get("updatedAt")) for i in collected
                                                 if isinstance(i, dict)) if t), default=lower_bound))
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
        # a row counts at most at the time it was fetched: a future updatedAt cannot stop later polls
        watermark = con.execute("SELECT max(least(updated_at, fetched_at)) FROM raw.wms_returns "
                                "WHERE business_date < $d", {"d": d}).fetchone()[0]
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
    common = {**stats.as_metadata(), **_paging_metadata(stats, context.log), "poll_mode": mode,
              "poll_from": iso(lower), "sweep_items": swept, "rejects": rejects.height}
    yield dg.MaterializeResult(asset_key=["raw", "wms_returns"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(returns.height), **common})
    yield dg.MaterializeResult(asset_key=["raw", "wms_return_line_items"],
                               metadata={"dagster/row_count": dg.MetadataValue.int(lines.height)})


def _probe_reject(item: Any, key: str, reason: str, return_reference: str | None = None) -> dict:
    order = item.get("salesOrderReferenceNumber") if isinstance(item, dict) else None
    return {"source": "wms_tracking_probes", "record_key": key, "reason": reason,
            "payload": _payload(item, RETURN_FIELDS, RETURN_LINE_FIELDS), "order_reference": _grain(order),
            "return_reference": return_reference}


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
    probe_rejects: list[dict] = []
    fetched_at = utc_now()
    with wms.client(cfg.wms, logger=context.log) as client:
        for i, (rma_reference, tracking_id) in enumerate(candidates, 1):
            hits = 0
            for index, summary in enumerate(client.find_returns_by_tracking(tracking_id)):
                ref = summary.get("returnReferenceNumber") if isinstance(summary, dict) else None
                if not isinstance(summary, dict) or _grain(ref) is None:
                    reason = (f"probe answer {NOT_AN_OBJECT}" if not isinstance(summary, dict)
                              else "probe answer without returnReferenceNumber")
                    probe_rejects.append(_probe_reject(summary, f"{rma_reference}/{tracking_id}#{index}", reason))
                    continue
                full = client.get_return(str(ref))
                if full is None:
                    continue
                if not isinstance(full, dict):
                    probe_rejects.append(_probe_reject(full, str(ref), f"return {NOT_AN_OBJECT}",
                                                       return_reference=str(ref)))
                    continue
                hits += 1
                found.append({**full, "_rma": rma_reference, "_tracking": tracking_id})
            log_rows.append({"rma_reference": rma_reference, "tracking_id": tracking_id, "returns_found": hits,
                             "probed_at": fetched_at})
            if i % 100 == 0:
                context.log.info(f"Tracking probes: {i}/{len(candidates)} done, {len(found)} returns found")
        stats = client.stats
    probe_of = {str(f.get("returnReferenceNumber")): (f["_rma"], f["_tracking"]) for f in found}
    returns, lines, rejects = returns_to_frames(collapse_latest(found), "wms_tracking_probes")
    rejects = pl.concat([rejects, pl.DataFrame(probe_rejects, schema=REJECT_SCHEMA)])
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
        "rejects": rejects.height, **stats.as_metadata(), **_paging_metadata(stats, context.log)})
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
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(_not_an_object_reject("wms_stock_adjustments", item, index, ADJUSTMENT_FIELDS,
                                                 ADJUSTMENT_LINE_FIELDS))
            continue
        number = item.get("transactionNumber")
        try:
            if not number:
                raise ValueError("missing transactionNumber")
            head = {"adjustment_id": _str(item.get("id")), "transaction_number": str(number),
                    "transaction_type": item.get("transactionType"), "completed_at": _ts(item, "completedAt"),
                    "tag": _str(item.get("tag"))}
            if head["completed_at"] is None:  # an adjustment is a completed transaction: undated, it counts nowhere
                raise ValueError("missing completedAt")
            rows = []
            line_items = item.get("lineItems")
            if line_items is not None and not isinstance(line_items, list):
                raise ValueError(f"lineItems is not a list (a JSON {_json_type(line_items)})")
            for li in line_items or []:
                if not isinstance(li, dict):
                    raise ValueError(f"a line item is not a JSON object (a JSON {_json_type(li)})")
                row = {"transaction_number": str(number), "line_id": _str(li.get("id")),
                       "product_name": li.get("productName"), "sku": _str(li.get("sku"))}
                for col, field in AMOUNT_FIELDS.items():
                    value = li.get(field)
                    if value is None:  # absent or null: unknown, not 0
                        raise ValueError(f"line {_str(li.get('id')) or _str(li.get('sku'))}: {field} is missing")
                    if isinstance(value, bool) or not isinstance(value, int):
                        raise ValueError(f"{field} is not an integer: {str(value)[:40]!r}")
                    row[col] = value
                if not row["sku"]:
                    raise ValueError("adjustment line without sku")
                rows.append(row)
        except ValueError as exc:
            rejects.append({"source": "wms_stock_adjustments", "record_key": _grain(number),
                            "reason": str(exc).splitlines()[0],
                            "payload": _payload(item, ADJUSTMENT_FIELDS, ADJUSTMENT_LINE_FIELDS),
                            "order_reference": None, "return_reference": _grain(item.get("tag"))})
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
        items = fetch_keyed(client, "/StockAdjustments", [("gtoe", "completedAt", iso(lower))],
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
        "rejects": rejects.height, **stats.as_metadata(), **_paging_metadata(stats, context.log)})
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
        items = fetch_keyed(client, "/Stocks", [], [("sku", "asc")], key="sku")
        stats = client.stats
    rows, rejects = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejects.append(_not_an_object_reject("wms_stocks", item, index, STOCK_PAYLOAD_FIELDS))
            continue
        try:
            if not item.get("sku"):
                raise ValueError("missing sku")
            row = {"sku": str(item["sku"]), "name": item.get("name"), "updated_at": _ts(item, "updatedAt")}
            for col, field in STOCK_FIELDS.items():
                value = item.get(field)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise ValueError(f"{field} is not an integer: {str(value)[:40]!r}")
                row[col] = value
            rows.append(row)
        except ValueError as exc:
            rejects.append({"source": "wms_stocks", "record_key": _grain(item.get("sku")),
                            "reason": str(exc).splitlines()[0], "payload": _payload(item, STOCK_PAYLOAD_FIELDS),
                            "order_reference": None, "return_reference": None})
    schema = {"sku": pl.Utf8, "name": pl.Utf8, "updated_at": pl.Datetime("us"),
              **{c: pl.Int64 for c in STOCK_FIELDS}}
    frame = pl.DataFrame(rows, schema=schema).with_columns(business_date=pl.lit(d), read_at=pl.lit(read_at))
    with warehouse.transaction() as con:
        warehouse.replace_partition(con, "raw.wms_stocks", d, frame)
        warehouse.replace_partition(con, "recon.rejects", d,
                                    pl.DataFrame(rejects, schema=REJECT_SCHEMA).with_columns(business_date=pl.lit(d)),
                                    source="wms_stocks")
    return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(frame.height),
                                          "rejects": len(rejects), **stats.as_metadata(),
                                          **_paging_metadata(stats, context.log)})


defs = dg.Definitions(assets=[wms_returns, wms_tracking_probes, wms_stock_adjustments, wms_stocks])
