"""How the WMS assets ask the API: the incremental returns poll with its sweep, and keyed paging.

Returns are polled per state, incrementally on ``updatedAt``; a final sweep re-reads what
changed while paging. Duplicates (page overlaps, sweeps, records moving between states)
collapse to the latest ``updatedAt`` per return (``frames.collapse_latest``).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from assets.sources.wms.frames import collapse_latest, field_of, grain, instant_or_none, iso
from pipelines.partitions import utc_now
from pipelines.resources.wms import WmsClient

WMS_STATES = ("ReturnCreated", "ArrivedToWarehouse", "Completed")
RETURNS_WITH_ITEMS = "/Returns/returnsWithLineItems"


def paging_metadata(stats: Any, log: Any = None) -> dict[str, Any]:
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
            value = grain(field_of(item, key))
            out[("key", value) if value is not None else ("unkeyed", n)] = item
    return list(out.values())


def poll_returns(client: WmsClient, lower_bound: datetime, overlap: timedelta,
                 log: Any = None) -> tuple[list[Any], int]:
    """Every return updated since ``lower_bound``, per state, then a sweep of what moved meanwhile."""
    collected: list[Any] = []
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
        stamps = (instant_or_none(field_of(i, "updatedAt")) for i in collected)
        newest = min(utc_now(), max((t for t in stamps if t), default=lower_bound))
        sweep_from = max(lower_bound, newest - overlap)
        for page in client.iter_pages(RETURNS_WITH_ITEMS, [("gtoe", "updatedAt", iso(sweep_from))],
                                      [("updatedAt", "asc"), ("returnReferenceNumber", "asc")]):
            collected.extend(page)
            swept += len(page)
    return collapse_latest(collected), swept
