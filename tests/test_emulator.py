"""Tests of the WMS API emulator (pipelines/demo/emulator.py), over real HTTP.

The world is hand-built here (250 returns, 30 stock adjustments, 20 stocks, all
satisfying the state invariants of sources.md section 1), written as jsonl and
read back through WmsWorld.load. Expected answers are computed directly from
those records in plain Python.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from pipelines.demo.emulator import WmsEmulator, WmsWorld

TENANT = "tenant-42"
TOKEN = "tok-Sup3rSecret-9f8e7d"
HEADERS = {"X-Tenant-Id": TENANT, "Authorization": f"Bearer {TOKEN}"}
BIG_LIMIT = 1_000_000
BASE = datetime(2024, 2, 1, tzinfo=timezone.utc)
N_RETURNS, N_ADJ, N_STOCKS = 250, 30, 20


# --------------------------------------------------------------------------- world


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


def build_returns() -> list[dict]:
    out = []
    for i in range(N_RETURNS):
        # every 8th return is created exactly at midnight UTC (boundary cases for gt/gte/lt/lte)
        created = BASE + timedelta(hours=3 * i) + (timedelta(microseconds=137 * i) if i % 8 else timedelta(0))
        state = ("Completed", "Completed", "ArrivedToWarehouse", "ArrivedToWarehouse", "ReturnCreated")[i % 5]
        arrived = created + timedelta(hours=20, minutes=i % 60) if state != "ReturnCreated" else None
        completed = arrived + timedelta(days=1, seconds=i) if state == "Completed" else None
        updated = (completed or arrived or created) + timedelta(minutes=5, microseconds=i)
        ref = f"RMA-{1000 + i}" if i % 3 else f"Return-{14000 + i}"
        items = []
        for j in range(1 + i % 3):
            if state == "ReturnCreated":
                li_state, processed = "WaitingToBeProcessed", None
            elif state == "ArrivedToWarehouse":
                li_state, processed = ("Damaged", arrived) if j == 0 and i % 2 else ("WaitingToBeProcessed", None)
            else:
                li_state, processed = ("Undamaged", "Damaged", "Missing")[(i + j) % 3], completed
            items.append({
                "lineItemReferenceNumber": f"{ref}-L{j}",
                "sku": f"SKU-{(i + j) % N_STOCKS:03d}",
                "processedAt": iso(processed) if processed else None,
                "state": li_state,
                "damagedState": "WaitingInWarehouse" if li_state == "Damaged" else None,
                "serialNumber": f"SN{i:04d}{j}" if i % 4 == 0 else None,
            })
        out.append({
            "source": "Oplog" if i % 2 else "WMS",
            "returnReferenceNumber": ref,
            "salesOrderChannel": "web" if i % 5 else None,
            "salesOrderReferenceNumber": f"SO-{5000 + i // 2}",
            "notes": None if i % 4 else f"customer says size {i % 7}",
            "state": state,
            "trackingId": None if i % 10 == 7 else f"TRK{i:05d}",
            "cargoCarrier": ("Yurtici", "Aras", None)[i % 3],
            "createdAt": iso(created),
            "updatedAt": iso(updated),
            "arrivedToWarehouseAt": iso(arrived) if arrived else None,
            "completedAt": iso(completed) if completed else None,
            "courierRequest": ("No", "Requested", "Success", "Fail")[i % 4],
            "tag": None if i % 6 else "defective",
            "lineItems": items,
        })
    return out


def build_adjustments(returns: list[dict]) -> list[dict]:
    completed = [r for r in returns if r["state"] == "Completed"]
    out = []
    for i in range(N_ADJ):
        ret = completed[i % len(completed)]
        out.append({
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"adj-{i}")),
            "transactionNumber": f"ADJ-{i:04d}",
            "transactionType": ("ReturnRestock", "Lost", "Found", "Quarantine")[i % 4],
            "completedAt": iso(BASE + timedelta(days=i, hours=i % 5)),
            "tag": ret["returnReferenceNumber"] if i % 3 else None,
            "lineItems": [{
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"adj-{i}-0")),
                "productName": f"Product {i % N_STOCKS}",
                "sku": f"SKU-{i % N_STOCKS:03d}",
                "lostAmount": i % 2, "foundAmount": (i + 1) % 2,
                "putInQuarantineAmount": 0, "releaseFromQuarantineAmount": i % 3,
            }],
        })
    return out


def build_stocks() -> list[dict]:
    return [{
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"stock-{i}")),
        "updatedAt": iso(BASE + timedelta(days=i)),
        "sku": f"SKU-{i:03d}",
        "name": f"Product {i}",
        "barcodes": [f"869{i:010d}"],
        "totalStockAmount": (i * 7) % 23 + 3,
        "availableStock": (i * 7) % 23,  # 0..22: "10" < "9" as text, not as numbers
        "reservedStock": 3, "receivedItemAmount": i, "damagedItemAmount": i % 2,
        "expiredAmount": 0, "lostItemAmount": i % 3,
    } for i in range(N_STOCKS)]


def write_world(root: Path, manifest: dict | None = None) -> Path:
    returns = build_returns()
    wms = root / "wms"
    wms.mkdir(parents=True)
    for name, records in (("returns", returns), ("stock_adjustments", build_adjustments(returns)),
                          ("stocks", build_stocks())):
        # a blank line in the middle: loaders must tolerate it
        lines = [json.dumps(r) for r in records]
        lines.insert(len(lines) // 2, "")
        (wms / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def check_invariants(r: dict) -> None:
    created, arrived, completed = r["createdAt"], r["arrivedToWarehouseAt"], r["completedAt"]
    if r["state"] == "ReturnCreated":
        assert arrived is None and completed is None, r
    elif r["state"] == "ArrivedToWarehouse":
        assert arrived is not None and completed is None, r
        assert ts(created) <= ts(arrived), r
    else:
        assert r["state"] == "Completed" and arrived and completed, r
        assert ts(created) <= ts(arrived) <= ts(completed), r
        assert all(li["state"] != "WaitingToBeProcessed" for li in r["lineItems"]), r
    assert ts(r["updatedAt"]) >= max(ts(x) for x in (created, arrived, completed) if x), r


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory) -> Path:
    return write_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def world(world_dir) -> WmsWorld:
    return WmsWorld.load(world_dir)


@pytest.fixture(scope="module")
def emu(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT) as e:
        yield e


class Api:
    def __init__(self, base_url: str, headers: dict | None = None):
        self.base = base_url + "/openapi/v1"
        self.session = requests.Session()
        self.session.headers.update(HEADERS if headers is None else headers)

    def get(self, path: str, params=None, **kw) -> requests.Response:
        return self.session.get(self.base + path, params=params, timeout=10, **kw)

    def ok(self, path: str, params=None) -> dict:
        r = self.get(path, params)
        assert r.status_code == 200, r.text
        return r.json()

    def walk(self, path: str, params=None, *, dqb: str | None = None, page: int = 100) -> list[dict]:
        """All pages: advance offset by the items received until dataSetCount."""
        items: list[dict] = []
        offset = 0
        for _ in range(1000):
            p = list(params.items() if isinstance(params, dict) else params or [])
            if dqb is None:
                p += [("offset", offset), ("count", page)]
            else:
                p.append(("dqb", "&".join(x for x in (dqb, f"offset={offset}&count={page}") if x)))
            body = self.ok(path, p)
            assert body["offset"] == offset
            assert body["count"] == len(body["items"]) <= 100
            items += body["items"]
            offset += len(body["items"])
            if not body["items"] or offset >= body["dataSetCount"]:
                return items
        raise AssertionError("paging did not terminate")


@pytest.fixture(scope="module")
def api(emu) -> Api:
    return Api(emu.base_url)


def dqb(*triplets: tuple[str, str, str], sort: tuple[str, ...] = ()) -> str:
    pairs: list[tuple[str, str]] = []
    for o, p, v in triplets:
        pairs += [("o", o), ("p", p), ("v", v)]
    pairs += [("s", s) for s in sort]
    return urlencode(pairs)


def refs(items: list[dict], key: str = "returnReferenceNumber") -> list[str]:
    return [r[key] for r in items]


def check_error_envelope(r: requests.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "requestId", "timestamp"}
    assert set(body["error"]) == {"code", "message", "errors"}
    assert isinstance(body["error"]["errors"], list)
    uuid.UUID(body["requestId"])
    ts(body["timestamp"])
    if code:
        assert body["error"]["code"] == code
    assert TOKEN not in r.text
    assert "x-remaining-calls" in r.headers
    return body


# --------------------------------------------------------------------------- world files


def test_world_fixture_is_valid_and_loads(world):
    assert (len(world.returns), len(world.stock_adjustments), len(world.stocks)) == (N_RETURNS, N_ADJ, N_STOCKS)
    assert world.returns == build_returns()
    assert world.manifest == {}
    for r in world.returns:
        check_invariants(r)
    assert {r["state"] for r in world.returns} == {"ReturnCreated", "ArrivedToWarehouse", "Completed"}


def test_world_load_manifest_and_errors(tmp_path):
    d = write_world(tmp_path / "w", manifest={"tenant_id": "acme", "token": "t"})
    assert WmsWorld.load(d).manifest == {"tenant_id": "acme", "token": "t"}
    with pytest.raises(FileNotFoundError):
        WmsWorld.load(tmp_path / "nowhere")
    (d / "wms" / "stocks.jsonl").write_text('{"sku": "A"}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"stocks\.jsonl:2"):
        WmsWorld.load(d)


# --------------------------------------------------------------------------- plain filters

PLAIN_EQ_CASES = [
    ("/Returns", "state", "ArrivedToWarehouse", "returnReferenceNumber"),
    ("/Returns", "trackingId", "TRK00042", "returnReferenceNumber"),
    ("/Returns", "salesOrderReferenceNumber", "SO-5010", "returnReferenceNumber"),
    ("/Returns", "returnReferenceNumber", "RMA-1001", "returnReferenceNumber"),
    ("/Returns/returnsWithLineItems", "state", "ReturnCreated", "returnReferenceNumber"),
    ("/StockAdjustments", "transactionType", "Lost", "transactionNumber"),
    ("/StockAdjustments", "tag", "RMA-1001", "transactionNumber"),
    ("/Stocks", "sku", "SKU-007", "sku"),
]


def _records(world: WmsWorld, path: str) -> list[dict]:
    return {"/StockAdjustments": world.stock_adjustments, "/Stocks": world.stocks}.get(path, world.returns)


@pytest.mark.parametrize("form", ["plain", "dqb"])
@pytest.mark.parametrize("path,prop,value,key", PLAIN_EQ_CASES)
def test_equality_filters_both_forms(api, world, form, path, prop, value, key):
    expected = [r[key] for r in _records(world, path) if r[prop] == value]
    assert 0 < len(expected) < len(_records(world, path))
    if form == "plain":
        got = api.walk(path, {prop: value})
    else:
        got = api.walk(path, dqb=dqb(("eq", prop, value)))
    assert refs(got, key) == expected


def test_plain_equality_repeated_matches_any(api, world):
    got = api.walk("/Returns", [("state", "ReturnCreated"), ("state", "Completed")])
    assert refs(got) == [r["returnReferenceNumber"] for r in world.returns if r["state"] != "ArrivedToWarehouse"]


MIDNIGHT = datetime(2024, 2, 4, tzinfo=timezone.utc)  # return #24 is created exactly then


@pytest.mark.parametrize("op,fn", [
    ("gt", lambda a, b: a > b), ("gte", lambda a, b: a >= b),
    ("lt", lambda a, b: a < b), ("lte", lambda a, b: a <= b),
])
def test_plain_date_bounds(api, world, op, fn):
    # date-only value = midnight UTC; a return sits exactly on the bound, so gt/gte and lt/lte differ
    assert sum(ts(r["createdAt"]) == MIDNIGHT for r in world.returns) == 1
    expected = [r["returnReferenceNumber"] for r in world.returns if fn(ts(r["createdAt"]), MIDNIGHT)]
    assert refs(api.walk("/Returns", {"createdAt": f"{op}:2024-02-04"})) == expected
    # full timestamp on updatedAt, bound = an existing record's exact updatedAt
    bound = world.returns[100]["updatedAt"]
    expected = [r["returnReferenceNumber"] for r in world.returns if fn(ts(r["updatedAt"]), ts(bound))]
    assert 0 < len(expected) < N_RETURNS
    assert refs(api.walk("/Returns", {"updatedAt": f"{op}:{bound}"})) == expected


def test_plain_date_bounds_inclusive_exclusive_differ(api):
    gte = api.ok("/Returns", {"createdAt": "gte:2024-02-04"})["dataSetCount"]
    gt = api.ok("/Returns", {"createdAt": "gt:2024-02-04"})["dataSetCount"]
    lte = api.ok("/Returns", {"createdAt": "lte:2024-02-04T00:00:00Z"})["dataSetCount"]
    lt = api.ok("/Returns", {"createdAt": "lt:2024-02-04T00:00:00Z"})["dataSetCount"]
    assert gte == gt + 1 and lte == lt + 1 and gte + lt == N_RETURNS


def test_plain_repeated_date_bound_is_a_window(api, world):
    params = [("updatedAt", "gte:2024-02-10"), ("updatedAt", "lt:2024-02-12T12:00:00Z"), ("count", "100")]
    lo, hi = datetime(2024, 2, 10, tzinfo=timezone.utc), datetime(2024, 2, 12, 12, tzinfo=timezone.utc)
    expected = [r["returnReferenceNumber"] for r in world.returns if lo <= ts(r["updatedAt"]) < hi]
    assert 5 < len(expected) < 100
    assert refs(api.ok("/Returns", params)["items"]) == expected


def test_plain_date_bounds_adjustments_and_stocks(api, world):
    got = api.walk("/StockAdjustments", [("completedAt", "gte:2024-02-05"), ("completedAt", "lt:2024-02-15")])
    lo, hi = datetime(2024, 2, 5, tzinfo=timezone.utc), datetime(2024, 2, 15, tzinfo=timezone.utc)
    expected = [a["transactionNumber"] for a in world.stock_adjustments if lo <= ts(a["completedAt"]) < hi]
    assert len(expected) == 10 and refs(got, "transactionNumber") == expected
    got = api.walk("/Stocks", {"updatedAt": "gt:2024-02-10"})
    assert refs(got, "sku") == [s["sku"] for s in world.stocks if ts(s["updatedAt"]) > datetime(2024, 2, 10, tzinfo=timezone.utc)]


def test_plain_parameter_names_case_insensitive_and_unknown_ignored(api, world):
    expected = [r["returnReferenceNumber"] for r in world.returns if r["state"] == "Completed"]
    assert refs(api.walk("/Returns", {"State": "Completed", "foo": "bar"})) == expected


# --------------------------------------------------------------------------- dqb filters

T24 = "2024-02-04T00:00:00Z"
U100 = build_returns()[100]["updatedAt"]

DQB_CASES = [
    ("eq", "state", "Completed", lambda r: r["state"] == "Completed"),
    ("ne", "state", "Completed", lambda r: r["state"] != "Completed"),
    ("ne", "trackingId", "TRK00001", lambda r: r["trackingId"] != "TRK00001"),  # nulls match ne
    ("eq", "trackingId", "TRK00003", lambda r: r["trackingId"] == "TRK00003"),
    ("lt", "createdAt", T24, lambda r: ts(r["createdAt"]) < ts(T24)),
    ("ltoe", "createdAt", T24, lambda r: ts(r["createdAt"]) <= ts(T24)),
    ("gt", "updatedAt", U100, lambda r: ts(r["updatedAt"]) > ts(U100)),
    ("gtoe", "updatedAt", U100, lambda r: ts(r["updatedAt"]) >= ts(U100)),
    # timestamps compare as instants, not text: 01:00+01:00 is midnight UTC
    ("gtoe", "createdAt", "2024-02-04T01:00:00+01:00", lambda r: ts(r["createdAt"]) >= ts(T24)),
    ("lt", "completedAt", "2024-02-10", lambda r: r["completedAt"] is not None and ts(r["completedAt"]) < datetime(2024, 2, 10, tzinfo=timezone.utc)),
    ("gt", "arrivedToWarehouseAt", "2024-02-20", lambda r: r["arrivedToWarehouseAt"] is not None and ts(r["arrivedToWarehouseAt"]) > datetime(2024, 2, 20, tzinfo=timezone.utc)),
    ("cts", "notes", "size 3", lambda r: r["notes"] is not None and "size 3" in r["notes"]),
    ("sw", "trackingId", "TRK001", lambda r: (r["trackingId"] or "").startswith("TRK001")),
    ("ew", "returnReferenceNumber", "5", lambda r: r["returnReferenceNumber"].endswith("5")),
    ("in", "state", "ReturnCreated,ArrivedToWarehouse", lambda r: r["state"] in ("ReturnCreated", "ArrivedToWarehouse")),
    ("in", "salesOrderReferenceNumber", "SO-5000,SO-5010,SO-9999", lambda r: r["salesOrderReferenceNumber"] in ("SO-5000", "SO-5010")),
    ("eq", "cargoCarrier", "Aras", lambda r: r["cargoCarrier"] == "Aras"),
]


@pytest.mark.parametrize("op,prop,value,pred", DQB_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(DQB_CASES)])
def test_dqb_operators(api, world, op, prop, value, pred):
    expected = [r["returnReferenceNumber"] for r in world.returns if pred(r)]
    assert 0 < len(expected) < N_RETURNS
    assert refs(api.walk("/Returns", dqb=dqb((op, prop, value)))) == expected


def test_dqb_boundaries_distinguish_strict_and_inclusive(api):
    def n(op, prop, v):
        return api.ok("/Returns", {"dqb": dqb((op, prop, v)), "count": 0})["dataSetCount"]

    assert n("ltoe", "createdAt", T24) == n("lt", "createdAt", T24) + 1
    assert n("gtoe", "updatedAt", U100) == n("gt", "updatedAt", U100) + 1


def test_dqb_null_never_matches_except_ne(api, world):
    nulls = sum(r["trackingId"] is None for r in world.returns)
    assert nulls > 0
    for op in ("eq", "lt", "gt", "ltoe", "gtoe", "cts", "sw", "ew", "in"):
        got = api.walk("/Returns", dqb=dqb((op, "trackingId", "")))
        assert all(r["trackingId"] is not None for r in got), op
    assert api.ok("/Returns", {"dqb": dqb(("ne", "trackingId", "x")), "count": 0})["dataSetCount"] == N_RETURNS


def test_dqb_numbers_compare_as_numbers(api, world):
    got = api.walk("/Stocks", dqb=dqb(("gt", "availableStock", "9")))
    expected = [s["sku"] for s in world.stocks if s["availableStock"] > 9]
    assert len(expected) > 5 and refs(got, "sku") == expected
    got = api.walk("/Stocks", dqb=dqb(("in", "availableStock", "0,7,14.0")))
    assert sorted(s["availableStock"] for s in got) == sorted(s["availableStock"] for s in world.stocks if s["availableStock"] in (0, 7, 14))
    got = api.walk("/Stocks", dqb=dqb(("ltoe", "availableStock", "9"), ("sw", "sku", "SKU-01")))
    assert refs(got, "sku") == [s["sku"] for s in world.stocks if s["availableStock"] <= 9 and s["sku"].startswith("SKU-01")]


def test_dqb_filters_on_adjustments_and_stocks(api, world):
    got = api.walk("/StockAdjustments", dqb=dqb(("gtoe", "completedAt", "2024-02-20"), ("ne", "transactionType", "Lost")))
    expected = [a["transactionNumber"] for a in world.stock_adjustments
                if ts(a["completedAt"]) >= datetime(2024, 2, 20, tzinfo=timezone.utc) and a["transactionType"] != "Lost"]
    assert len(expected) > 3 and refs(got, "transactionNumber") == expected


def test_dqb_property_names_case_insensitive(api, world):
    a = api.walk("/Returns", dqb=dqb(("eq", "STATE", "Completed"), ("sw", "TrackingID", "TRK00")))
    b = api.walk("/Returns", dqb=dqb(("eq", "state", "Completed"), ("sw", "trackingId", "TRK00")))
    assert a == b and len(a) > 10
    c = api.walk("/Returns", dqb=dqb(("EQ", "state", "Completed"), sort=("UPDATEDAT,DESC",)))
    completed = [r for r in world.returns if r["state"] == "Completed"]
    assert refs(c) == refs(sorted(completed, key=lambda r: ts(r["updatedAt"]), reverse=True))
    assert refs(c) != refs(completed)


def test_dqb_multi_key_sort(api, world):
    got = api.walk("/Returns", dqb=dqb(sort=("state,asc", "createdAt,desc")))
    expected = sorted(world.returns, key=lambda r: ts(r["createdAt"]), reverse=True)
    expected = sorted(expected, key=lambda r: r["state"])
    assert refs(got) == refs(expected)
    # desc on the first key, nulls last when descending, asc tie-break
    got = api.walk("/Returns", dqb=dqb(sort=("cargoCarrier,desc", "returnReferenceNumber,asc")))
    expected = sorted(world.returns, key=lambda r: r["returnReferenceNumber"])
    expected = sorted(expected, key=lambda r: (r["cargoCarrier"] is not None, r["cargoCarrier"] or ""), reverse=True)
    assert refs(got) == refs(expected)
    assert got[-1]["cargoCarrier"] is None and got[0]["cargoCarrier"] == "Yurtici"
    # default direction is asc
    assert refs(api.walk("/Returns", dqb=dqb(sort=("updatedAt",)))) == refs(sorted(world.returns, key=lambda r: ts(r["updatedAt"])))


def test_dqb_spec_example_verbatim(api, emu, world):
    url = (emu.base_url + "/openapi/v1/Returns?dqb=o%3Deq%26p%3Dstate%26v%3DCompleted"
           "%26s%3DupdatedAt%2Casc%26offset%3D0%26count%3D100")
    body = api.session.get(url, timeout=10).json()
    completed = sorted((r for r in world.returns if r["state"] == "Completed"), key=lambda r: ts(r["updatedAt"]))
    assert body["dataSetCount"] == len(completed) == 100
    assert refs(body["items"]) == refs(completed)[:100]


def test_plain_and_dqb_combine(api, world):
    got = api.walk("/Returns", {"state": "Completed", "updatedAt": "gte:2024-02-15"},
                   dqb=dqb(("sw", "returnReferenceNumber", "RMA-")))
    lo = datetime(2024, 2, 15, tzinfo=timezone.utc)
    expected = [r["returnReferenceNumber"] for r in world.returns
                if r["state"] == "Completed" and ts(r["updatedAt"]) >= lo and r["returnReferenceNumber"].startswith("RMA-")]
    assert 5 < len(expected) and refs(got) == expected


# --------------------------------------------------------------------------- paging


@pytest.mark.parametrize("form", ["plain", "dqb"])
def test_count_capped_at_100(api, form):
    params = {"count": 500} if form == "plain" else {"dqb": "count=500&offset=0"}
    body = api.ok("/Returns", params)
    assert body["count"] == len(body["items"]) == 100
    assert body["dataSetCount"] == N_RETURNS and body["offset"] == 0


def test_default_count_and_offset_past_end(api, world):
    body = api.ok("/Returns")
    assert body["count"] == 10 and body["offset"] == 0 and body["dataSetCount"] == N_RETURNS
    assert refs(body["items"]) == refs(world.returns[:10])  # unsorted = insertion order
    body = api.ok("/Returns", {"offset": 1000, "count": 50})
    assert body == {"items": [], "count": 0, "offset": 1000, "dataSetCount": N_RETURNS}
    body = api.ok("/Returns", {"offset": 245, "count": 50})
    assert body["count"] == 5 and refs(body["items"]) == refs(world.returns[245:])


@pytest.mark.parametrize("form", ["plain", "dqb"])
@pytest.mark.parametrize("page", [37, 500])
def test_walk_all_pages_once_each(api, world, form, page):
    sort = dqb(sort=("updatedAt,asc",)) if form == "dqb" else None
    got = api.walk("/Returns", dqb=sort, page=page)
    assert len(got) == N_RETURNS and sorted(refs(got)) == sorted(refs(world.returns))
    got = api.walk("/Returns/returnsWithLineItems", dqb=sort, page=page)
    assert sorted(refs(got)) == sorted(refs(world.returns)) and len(got) == N_RETURNS
    got = api.walk("/StockAdjustments", dqb="" if form == "dqb" else None, page=7)
    assert refs(got, "transactionNumber") == refs(world.stock_adjustments, "transactionNumber")
    got = api.walk("/Stocks", dqb="" if form == "dqb" else None, page=6)
    assert got == world.stocks


def test_dqb_paging_wins_over_plain(api, world):
    body = api.ok("/Returns", {"offset": 0, "count": 3, "dqb": "offset=5&count=4"})
    assert body["offset"] == 5 and refs(body["items"]) == refs(world.returns[5:9])


# --------------------------------------------------------------------------- shapes and errors


def test_summaries_have_no_line_items_and_full_returns_do(api, world):
    summaries = api.walk("/Returns")
    full = api.walk("/Returns/returnsWithLineItems")
    assert all("lineItems" not in r for r in summaries)
    assert summaries == [{k: v for k, v in r.items() if k != "lineItems"} for r in world.returns]
    assert full == world.returns


def test_single_return(api, world):
    for rec in (world.returns[0], world.returns[137]):
        body = api.ok(f"/Returns/{rec['returnReferenceNumber']}")
        assert body == rec and body["lineItems"]


def test_404s(api, emu):
    body = check_error_envelope(api.get("/Returns/RMA-999999"), 404, "NotFound")
    assert "RMA-999999" in body["error"]["message"]
    check_error_envelope(api.get("/Nope"), 404, "NotFound")
    check_error_envelope(api.session.get(emu.base_url + "/api/Returns", timeout=10), 404, "NotFound")
    check_error_envelope(api.session.post(api.base + "/Returns", json={}, timeout=10), 405, "MethodNotAllowed")


@pytest.mark.parametrize("path,params,prop", [
    ("/Returns", {"dqb": dqb(("like", "state", "Completed"))}, "state"),
    ("/Returns", {"createdAt": "between:2024-02-01"}, "createdAt"),
    ("/Returns", {"createdAt": "2024-02-01"}, "createdAt"),
    ("/Returns", {"updatedAt": "gte:not-a-date"}, "updatedAt"),
    ("/Returns", {"dqb": dqb(("gt", "createdAt", "yesterday"))}, "createdAt"),
    ("/Stocks", {"dqb": dqb(("gt", "availableStock", "ten"))}, "availableStock"),
    ("/Stocks", {"dqb": dqb(("in", "availableStock", "1,two"))}, "availableStock"),
    ("/Returns", {"dqb": dqb(("eq", "nope", "x"))}, "nope"),
    ("/Returns", {"dqb": dqb(("eq", "lineItems", "x"))}, "lineItems"),
    ("/Returns", {"dqb": dqb(sort=("nope,asc",))}, "nope"),
    ("/Returns", {"dqb": dqb(sort=("createdAt,sideways",))}, "createdAt"),
    ("/Returns", {"dqb": "o=eq&p=state"}, "dqb"),
    ("/Returns", {"dqb": "x=1"}, "dqb"),
    ("/Returns", {"count": "abc"}, "count"),
    ("/Returns", {"offset": "-1"}, "offset"),
    ("/StockAdjustments", {"dqb": "count=many"}, "count"),
])
def test_bad_queries_400(api, path, params, prop):
    body = check_error_envelope(api.get(path, params), 400, "BadRequest")
    errors = body["error"]["errors"]
    assert errors and {"property", "message", "errorCode"} <= set(errors[0])
    assert prop in [e["property"] for e in errors]


@pytest.mark.parametrize("headers", [
    {"X-Tenant-Id": TENANT},                                              # no token
    {"X-Tenant-Id": TENANT, "Authorization": "Bearer wrong-token"},       # wrong token
    {"X-Tenant-Id": TENANT, "Authorization": f"Basic {TOKEN}"},           # wrong scheme
    {"X-Tenant-Id": "other-tenant", "Authorization": f"Bearer {TOKEN}"},  # wrong tenant
    {"Authorization": f"Bearer {TOKEN}"},                                 # no tenant
], ids=["missing-token", "wrong-token", "basic", "wrong-tenant", "missing-tenant"])
def test_401(emu, headers):
    client = Api(emu.base_url, headers=headers)
    for path in ("/Returns", "/Returns/RMA-1001", "/Stocks", "/Nope"):
        r = client.get(path)
        body = check_error_envelope(r, 401, "Unauthorized")
        assert "wrong-token" not in r.text and TOKEN not in json.dumps(body)
        assert "items" not in body


def test_token_never_echoed_in_400(api):
    r = api.get("/Returns", {"dqb": dqb(("gt", "createdAt", TOKEN))})
    check_error_envelope(r, 400)


def test_requests_logged_at_debug_only_without_token(emu, api, caplog):
    caplog.set_level(logging.DEBUG)
    api.get("/Returns", {"state": "Completed"})
    Api(emu.base_url, {"X-Tenant-Id": TENANT, "Authorization": "Bearer nope"}).get("/Stocks")
    mine = [r for r in caplog.records if r.name.startswith("pipelines.demo.emulator")]
    assert any("/openapi/v1/Returns" in r.getMessage() for r in mine)
    assert all(r.levelno == logging.DEBUG for r in mine)
    assert not any(TOKEN in r.getMessage() or "Bearer" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- rate limit


def test_rate_limit_sliding_window(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=5, rate_window_seconds=1.0) as e:
        api = Api(e.base_url)
        other = Api(e.base_url, {"X-Tenant-Id": "someone-else", "Authorization": "Bearer x"})
        no_token = Api(e.base_url, {"X-Tenant-Id": TENANT})
        statuses, remaining = [], []
        for client, path in ((api, "/Returns"), (api, "/Stocks"), (api, "/Nope"),
                             (no_token, "/Returns"), (api, "/Returns/RMA-1001")):
            r = client.get(path)
            statuses.append(r.status_code)
            remaining.append(int(r.headers["x-remaining-calls"]))
        assert statuses == [200, 200, 404, 401, 200]  # 401 and 404 count and carry the header too
        assert remaining == [4, 3, 2, 1, 0]
        assert no_token.get("/Returns").status_code == 429  # the limit is checked before authentication

        r = api.get("/Returns")
        assert r.status_code == 429
        assert r.headers["x-remaining-calls"] == "0"
        retry = int(r.headers["x-retry-after"])
        assert retry == 1
        assert r.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 1 seconds."}
        assert TOKEN not in r.text

        # another tenant has its own window (and gets its 401)
        r = other.get("/Returns")
        assert r.status_code == 401 and r.headers["x-remaining-calls"] == "4"

        time.sleep(0.6)
        for _ in range(3):  # rejected late in the window: must not consume it
            assert api.get("/Returns").status_code == 429
        time.sleep(0.5)  # the first five are out of the window now
        r = api.get("/Returns")
        assert r.status_code == 200 and r.headers["x-remaining-calls"] == "4"
        assert e.responses_429 == 5


def test_rate_limit_live_change(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=3) as e:
        api = Api(e.base_url)
        assert [api.get("/Stocks").status_code for _ in range(4)] == [200, 200, 200, 429]
        assert 1 <= int(api.get("/Stocks").headers["x-retry-after"]) <= 60
        e.rate_limit_per_minute = 10
        r = api.get("/Stocks")
        assert r.status_code == 200 and r.headers["x-remaining-calls"] == "6"


# --------------------------------------------------------------------------- concurrency


def test_concurrent_clients(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT,
                     latency_seconds=0.5) as e:
        states = ["ReturnCreated", "ArrivedToWarehouse", "Completed"]
        barrier = threading.Barrier(16)

        def job(k: int):
            client = Api(e.base_url)
            barrier.wait()
            t0 = time.monotonic()
            state = states[k % 3]
            body = client.ok("/Returns", {"state": state, "count": 100, "dqb": "s=createdAt,desc"})
            return k, state, body, time.monotonic() - t0

        t0 = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(job, range(16)))
        elapsed = time.monotonic() - t0
        for k, state, body, took in results:
            expected = sorted((r for r in world.returns if r["state"] == state), key=lambda r: ts(r["createdAt"]), reverse=True)
            assert body["dataSetCount"] == len(expected)
            assert refs(body["items"]) == refs(expected)[:100]
            assert took >= 0.5  # latency applied
        # Not a speed assertion: served one by one, 16 x 0.5 s could not take less than 8 s.
        assert elapsed < 8.0, elapsed
        assert e.requests_total == 16


def test_concurrent_walks_are_correct(emu, world):
    def job(k: int):
        client = Api(emu.base_url)
        if k % 2:
            return client.walk("/Returns", dqb=dqb(sort=("updatedAt,desc",)), page=13 + k)
        return client.walk("/Returns/returnsWithLineItems", {"state": "Completed"}, page=9 + k)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, range(8)))
    for k, got in enumerate(results):
        if k % 2:
            assert refs(got) == refs(sorted(world.returns, key=lambda r: ts(r["updatedAt"]), reverse=True))
        else:
            assert got == [r for r in world.returns if r["state"] == "Completed"]


# --------------------------------------------------------------------------- faults


def test_error_rate(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT, error_rate=1.0) as e:
        api = Api(e.base_url)
        codes = []
        for _ in range(12):
            r = api.get("/Returns")
            body = check_error_envelope(r, r.status_code)
            assert r.status_code in (500, 502, 503)
            assert body["error"]["code"] in ("InternalServerError", "BadGateway", "ServiceUnavailable")
            codes.append(r.status_code)
        assert len(set(codes)) > 1
        assert e.responses_5xx == 12 and e.requests_total == 12
        e.error_rate = 0.0
        assert api.get("/Returns").status_code == 200
        e.error_rate = 0.5
        codes = [api.get("/Stocks").status_code for _ in range(40)]
        assert 200 in codes and any(c >= 500 for c in codes)
        assert e.responses_5xx == 12 + sum(c >= 500 for c in codes)
        e.reset_counters()
        assert (e.requests_total, e.responses_5xx, e.responses_429, e.mutations_done, e.requests_by_path) == (0, 0, 0, 0, {})


def test_mutate_between_pages_completes_arrived_returns(world):
    max_before = max(ts(r["updatedAt"]) for r in world.returns)
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT,
                     mutate_between_pages=3, seed=7) as e:
        api = Api(e.base_url)
        q = {"state": "ArrivedToWarehouse", "count": 10, "dqb": "s=updatedAt,asc"}
        arrived = sorted((r for r in world.returns if r["state"] == "ArrivedToWarehouse"), key=lambda r: ts(r["updatedAt"]))
        p1 = api.ok("/Returns", {**q, "offset": 0})
        assert e.mutations_done == 0 and p1["dataSetCount"] == len(arrived)
        assert refs(p1["items"]) == refs(arrived[:10])
        p2 = api.ok("/Returns", {**q, "offset": 10})
        assert e.mutations_done == 3
        assert p2["dataSetCount"] == len(arrived) - 3
        assert refs(p2["items"]) != refs(arrived[10:20])  # the page really shifted

        mutated = sorted((r for r in e.world.returns if ts(r["updatedAt"]) > max_before), key=lambda r: r["updatedAt"])
        assert len(mutated) == 3
        assert set(refs(mutated)) <= set(refs(p1["items"]))  # taken from before the offset
        for k, r in enumerate(mutated, 1):
            assert r["state"] == "Completed"
            assert ts(r["updatedAt"]) == ts(r["completedAt"]) == max_before + timedelta(seconds=k)
            assert all(li["processedAt"] for li in r["lineItems"])
        for r in e.world.returns:
            check_invariants(r)
        # the caller's world is not modified; only emulator.world is
        assert world.returns == build_returns()
        # the API serves the mutated records
        assert api.ok(f"/Returns/{mutated[0]['returnReferenceNumber']}")["state"] == "Completed"
        # the equality index (state=...) follows the mutation: the records that became Completed are found
        e.mutate_between_pages = 0  # the walk itself must not move records
        completed = refs(api.walk("/Returns", {"state": "Completed"}))
        assert set(refs(mutated)) <= set(completed)
        assert sorted(completed) == sorted(refs(r for r in e.world.returns if r["state"] == "Completed"))


def test_mutate_between_pages_arrivals_and_walk_disturbance(world):
    max_before = max(ts(r["updatedAt"]) for r in world.returns)
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT,
                     mutate_between_pages=2) as e:
        api = Api(e.base_url)
        created = [r for r in world.returns if r["state"] == "ReturnCreated"]
        body = api.ok("/Returns/returnsWithLineItems", {"state": "ReturnCreated", "offset": 20, "count": 10})
        assert e.mutations_done == 2 and body["dataSetCount"] == len(created) - 2
        moved = [r for r in e.world.returns if ts(r["updatedAt"]) > max_before]
        assert [r["state"] for r in moved] == ["ArrivedToWarehouse"] * 2
        for r in moved:
            assert r["completedAt"] is None and ts(r["arrivedToWarehouseAt"]) == ts(r["updatedAt"]) > max_before
            check_invariants(r)

        # walking every page sorted by updatedAt: the advanced returns move to the end and show up again
        e.reset_counters()
        got = api.walk("/Returns", dqb=dqb(sort=("updatedAt,asc",)), page=25)
        assert e.mutations_done == 2 * (e.requests_by_path["/openapi/v1/Returns"] - 1)
        assert len(got) > len(set(refs(got)))
        stamps = [ts(r["updatedAt"]) for r in e.world.returns]
        assert len(set(stamps)) == len(stamps)  # the clock gives every mutation its own instant
        for r in e.world.returns:
            check_invariants(r)
        # first pages never mutate
        before = e.mutations_done
        api.ok("/Returns", {"offset": 0, "count": 100})
        api.ok("/Stocks", {"offset": 5})
        assert e.mutations_done == before


def test_counters(emu, api):
    emu.reset_counters()
    api.get("/Returns")
    api.get("/Returns", {"offset": 10})
    api.get("/Stocks")
    Api(emu.base_url, {}).get("/Stocks")
    assert emu.requests_total == 4
    assert emu.requests_by_path == {"/openapi/v1/Returns": 2, "/openapi/v1/Stocks": 2}
    assert emu.responses_429 == emu.responses_5xx == emu.mutations_done == 0


def test_lifecycle(world):
    e = WmsEmulator(world)
    with pytest.raises(RuntimeError):
        e.base_url
    url = e.start()
    assert url == e.base_url and url.startswith("http://127.0.0.1:")
    r = requests.get(url + "/openapi/v1/Stocks", headers={"X-Tenant-Id": "demo-tenant", "Authorization": "Bearer demo-token"}, timeout=5)
    assert r.status_code == 200 and r.json()["dataSetCount"] == N_STOCKS
    e.stop()
    e.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/openapi/v1/Stocks", timeout=2)


def test_serve_forever_cli_uses_manifest_credentials(tmp_path):
    d = write_world(tmp_path / "w", manifest={"tenant_id": "acme", "token": "manifest-token"})
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.demo.emulator", str(d), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else line
        ok = requests.get(line + "/openapi/v1/Returns", timeout=5,
                          headers={"X-Tenant-Id": "acme", "Authorization": "Bearer manifest-token"})
        assert ok.status_code == 200 and ok.json()["dataSetCount"] == N_RETURNS
        bad = requests.get(line + "/openapi/v1/Returns", timeout=5,
                           headers={"X-Tenant-Id": "demo-tenant", "Authorization": "Bearer demo-token"})
        assert bad.status_code == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)  # generous: CI machines are shared and noisy
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


# --------------------------------------------------------------------------- broken answers


def test_reset_rate_resets_connections_without_an_answer(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT, reset_rate=1.0,
                     mutate_between_pages=3) as e:
        api = Api(e.base_url)
        for _ in range(3):
            with pytest.raises(requests.ConnectionError):
                api.get("/Returns", {"offset": 10})
        assert e.connections_reset == 3 and e.requests_total == 3
        assert e.mutations_done == 0, "a reset request is not routed"
        e.reset_rate = 0.0
        assert api.get("/Returns").status_code == 200  # the session reconnects
        # unauthenticated requests are answered, never reset
        e.reset_rate = 1.0
        assert Api(e.base_url, {}).get("/Returns").status_code == 401
        assert e.connections_reset == 3


def test_html_rate_answers_200_with_an_html_page(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT, html_rate=1.0) as e:
        api = Api(e.base_url)
        r = api.get("/Returns")
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
        assert r.text.lstrip().startswith("<!DOCTYPE html>")
        with pytest.raises(ValueError):
            r.json()
        assert e.responses_html == 1
        e.html_rate = 0.5
        kinds = [api.get("/Stocks").headers["Content-Type"].split(";")[0] for _ in range(40)]
        assert set(kinds) == {"text/html", "application/json"}
        assert e.responses_html == 1 + kinds.count("text/html")


def test_truncated_rate_cuts_the_json_body_in_half(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT) as e:
        api = Api(e.base_url)
        full = api.get("/Stocks", {"count": 100}).content
        e.truncated_rate = 1.0
        r = api.get("/Stocks", {"count": 100})
        assert r.status_code == 200 and r.content == full[: len(full) // 2]
        assert int(r.headers["Content-Length"]) == len(r.content)
        with pytest.raises(ValueError):
            r.json()
        # only 200 answers are cut: an error envelope stays whole
        assert api.get("/Returns/no-such-return").json()["error"]["code"] == "NotFound"
        assert e.responses_truncated == 1


def test_drop_dataset_count_omits_it_from_every_page(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT) as e:
        api = Api(e.base_url)
        e.drop_dataset_count = True
        items, offset = [], 0
        for _ in range(10):
            body = api.ok("/Returns", {"offset": offset, "count": 100})
            assert "dataSetCount" not in body and body["count"] == len(body["items"])
            if not body["items"]:
                break
            items += body["items"]
            offset += len(body["items"])
        assert refs(items) == refs(world.returns)
        assert e.pages_without_dataset_count == 4  # 100 + 100 + 50 + the empty page
        e.drop_dataset_count = False
        assert api.ok("/Returns")["dataSetCount"] == N_RETURNS


def test_retry_after_seconds_overrides_the_429_wait(world):
    with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=1, rate_window_seconds=60,
                     retry_after_seconds=900) as e:
        api = Api(e.base_url)
        assert api.get("/Stocks").status_code == 200
        r = api.get("/Stocks")
        assert r.status_code == 429 and r.headers["x-retry-after"] == "900"
        assert r.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 900 seconds."}
        e.retry_after_seconds = 0.25
        assert api.get("/Stocks").headers["x-retry-after"] == "0.25"
        e.retry_after_seconds = None
        assert 1 <= int(api.get("/Stocks").headers["x-retry-after"]) <= 60
        assert e.responses_429 == 3


def test_fault_switches_validate_and_reset_counters(world):
    e = WmsEmulator(world)
    for name in ("html_rate", "truncated_rate", "reset_rate"):
        for bad in (-0.1, 1.5):
            with pytest.raises(ValueError):
                setattr(e, name, bad)
    with pytest.raises(ValueError):
        e.retry_after_seconds = -1
    e._responses_html = e._responses_truncated = e._connections_reset = e._pages_without_count = 5
    e.reset_counters()
    assert (e.responses_html, e.responses_truncated, e.connections_reset, e.pages_without_dataset_count) == (0, 0, 0, 0)


def test_broken_answer_draws_are_seeded(world):
    def run(seed: int) -> list[str]:
        with WmsEmulator(world, tenant_id=TENANT, token=TOKEN, rate_limit_per_minute=BIG_LIMIT, seed=seed,
                         html_rate=0.3, truncated_rate=0.3, reset_rate=0.2) as e:
            api = Api(e.base_url)
            out = []
            for _ in range(30):
                try:
                    r = api.get("/Stocks")
                except requests.ConnectionError:
                    out.append("reset")
                    continue
                try:
                    r.json()
                    out.append("ok")
                except ValueError:
                    out.append("html" if r.text.startswith("<") else "cut")
            assert out.count("reset") == e.connections_reset and out.count("html") == e.responses_html
            assert out.count("cut") == e.responses_truncated
            return out

    first = run(3)
    assert first == run(3) and {"ok", "reset", "html", "cut"} <= set(first)
