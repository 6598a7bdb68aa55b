"""Property-based fuzzing (Hypothesis) of the source parsers: for any input no exception
escapes, every input record is either loaded or in the rejects (count in = loaded + rejected),
and valid records load unchanged. The figures of each property are printed (`pytest -s`)."""
from __future__ import annotations

import json
import sqlite3
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import polars as pl

from pipelines.config import load_config
from pipelines.resources.refund_ledger import REFUND_METHOD, RefundLedgerResource
from pipelines.resources.storefront import StorefrontResource
from tests.test_storefront_ingestion import build_opencart

CFG = load_config()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIGURES: dict[str, list[int]] = {}


def _count(name: str, *numbers: int) -> None:
    totals = FIGURES.setdefault(name, [0] * (len(numbers) + 1))
    totals[0] += 1
    for i, n in enumerate(numbers, 1):
        totals[i] += n


def teardown_module(module) -> None:  # noqa: ARG001 - pytest hook
    for name, (examples, *sums) in FIGURES.items():
        print(f"\nfuzz {name}: {examples} examples, records in/loaded/rejected = {sums}")


# --------------------------------------------------------------------------- refund ledger

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=12),
                    st.sampled_from(["", " ", "12,50abc", "NaN", "1e400", "108.005", "-0.01", "0.0000000001"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                             st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=8)
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999"), places=3, allow_nan=False,
                    allow_infinity=False)


@st.composite
def valid_refund(draw, number: int) -> dict:
    lines = []
    for item in draw(st.lists(st.integers(1, 999), min_size=1, max_size=3, unique=True)):
        lines.append({"order_line": "1", "order_item_id": str(item), "reason": "damaged",
                      "payments": [{"details": {"cost_gross": str(draw(money)), "cost_net": "1.00",
                                                "cost_vat": "0.19"},
                                    "status": {"code": draw(st.sampled_from(["REFUNDED", "PENDING"]))}}]})
    return {"jsonrpc": "2.0", "id": f"m-{number}", "method": REFUND_METHOD, "params": {"refund": {
        "order_id": str(draw(st.integers(1, 10**6))), "credit_note_number": f"CN-FZ-{number}",
        "credit_note_date": "2026-03-01T10:00:00Z", "refund_type": "Return",
        "status": {"code": draw(st.sampled_from(["RELEASED", "PENDING"])), "date": "2026-03-02T10:00:00Z"},
        "currency": draw(st.sampled_from([None, "EUR", "KWD"])), "user": "agent-7", "lines": lines}}}


@st.composite
def ledger_lines(draw) -> tuple[list[str], list[dict]]:
    """Lines of one archive file: valid refunds (unique credit notes), other methods, broken JSON,
    arbitrary JSON values, and refund messages with one arbitrary field (of the refund, or of a
    nested status, line, payment or details)."""
    lines, valid = [], []
    for i in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["valid", "other", "broken", "json", "mangled", "nested"]))
        if kind == "valid":
            message = draw(valid_refund(i))
            valid.append(message)
            lines.append(json.dumps(message))
        elif kind == "other":
            lines.append(json.dumps({"jsonrpc": "2.0", "method": "magento.postsales.return_management.updated",
                                     "params": draw(json_values)}))
        elif kind == "broken":
            lines.append(json.dumps(draw(valid_refund(i)))[: draw(st.integers(1, 40))])
        elif kind == "json":
            lines.append(json.dumps(draw(json_values)))
        elif kind == "mangled":
            message = draw(valid_refund(i))
            refund = message["params"]["refund"]
            refund[draw(st.sampled_from(sorted(refund)))] = draw(json_values)
            lines.append(json.dumps(message))
        else:  # a field of a nested record: the status, a line, a payment, its details
            message = draw(valid_refund(i))
            refund = message["params"]["refund"]
            payment = refund["lines"][0]["payments"][0]
            record = draw(st.sampled_from([refund["status"], refund["lines"][0], payment, payment["details"],
                                           payment["status"]]))
            record[draw(st.sampled_from(sorted(record)))] = draw(json_values)
            lines.append(json.dumps(message))
    return lines, valid


@FUZZ
@given(ledger_lines())
def test_ledger_parser_loads_or_rejects_every_line(case):
    lines, valid = case
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "messages.jsonl").write_text("\n".join(lines) + "\n")
        read = RefundLedgerResource(path=tmp).read_ledger()
    stats = read.stats
    non_blank = sum(1 for line in lines if line.strip())
    loaded = stats.versions + stats.duplicates_collapsed
    # every line is a version, an identical redelivery, another method's message or a reject
    assert non_blank == loaded + stats.ignored_other_methods + stats.rejects, stats
    assert read.rejects.height == stats.rejects
    _count("ledger lines", non_blank, loaded + stats.ignored_other_methods, stats.rejects)
    rows = {(r["credit_note_number"], r["order_line_reference"]): r for r in read.refund_lines.iter_rows(named=True)}
    for message in valid:  # valid records load unchanged, amounts exact
        refund = message["params"]["refund"]
        for line in refund["lines"]:
            row = rows[(refund["credit_note_number"], line["order_item_id"])]
            payment = line["payments"][0]
            assert row["total_gross"] == Decimal(payment["details"]["cost_gross"])
            refunded = Decimal(payment["details"]["cost_gross"]) if payment["status"]["code"] == "REFUNDED" else 0
            assert row["refunded_gross"] == refunded
            assert row["order_reference"] == refund["order_id"] and row["status_code"] == refund["status"]["code"]
            assert row["currency"] == refund["currency"]
    assert all("agent-7" not in (p or "") for p in read.rejects["payload"].to_list()), "the user is never kept"
    assert all(r and "\n" not in r for r in read.rejects["reason"].to_list()), "a reason is one line"


# --------------------------------------------------------------------------- storefront

cells = st.one_of(st.none(), st.integers(-2**40, 2**40), st.text(max_size=10), st.floats(allow_nan=True),
                  st.sampled_from(["0000-00-00 00:00:00", "2026-02-30 10:00:00", "2026-03-01 10:00:00", "", "1e5",
                                   "12.5", "-1", "TS-RED", " ts-red "]))
FUZZED_COLUMNS = {
    "return": ["order_id", "product_id", "model", "quantity", "return_status_id", "return_action_id", "date_added"],
    "return_history": ["return_id", "return_status_id", "comment", "date_added"],
    "order_product": ["order_id", "model", "quantity", "price", "tax"],
    "order": ["total", "order_status_id", "currency_code", "currency_value", "date_added"],
    "product": ["model", "quantity", "price", "date_modified"],
}
KEYS = {"return": "return_id", "return_history": "return_history_id", "order_product": "order_product_id",
        "order": "order_id", "product": "product_id"}
RAW = {"return": "raw.oc_returns", "return_history": "raw.oc_return_history",
       "order_product": "raw.oc_order_lines", "order": "raw.oc_orders", "product": "raw.oc_products"}


@st.composite
def row_edits(draw) -> list[tuple[str, str, object]]:
    """A few (table, column, value) edits of one existing row each, drawn over the five tables."""
    edits = []
    for _ in range(draw(st.integers(0, 6))):
        table = draw(st.sampled_from(sorted(FUZZED_COLUMNS)))
        edits.append((table, draw(st.sampled_from(FUZZED_COLUMNS[table])), draw(cells)))
    return edits


@FUZZ
@given(row_edits(), st.integers(0, 10))
def test_storefront_parser_loads_or_rejects_every_row(edits, pick):
    with tempfile.TemporaryDirectory() as tmp:
        db = build_opencart(Path(tmp) / "shop.sqlite")
        con = sqlite3.connect(db)
        originals: dict[str, set] = {}
        for table, column, value in edits:
            ids = [r[0] for r in con.execute(f"SELECT {KEYS[table]} FROM oc_{table} ORDER BY 1")]
            target = ids[pick % len(ids)]
            con.execute(f'UPDATE "oc_{table}" SET {column} = ? WHERE {KEYS[table]} = ?', (value, target))
            originals.setdefault(table, set()).add(target)
        con.commit()
        counts = {t: con.execute(f'SELECT count(*) FROM "oc_{t}"').fetchone()[0] for t in KEYS}
        untouched_lines = {r[0]: r for r in con.execute(
            "SELECT order_product_id, order_id, model, quantity FROM oc_order_product")
            if r[0] not in originals.get("order_product", set()) and r[1] not in originals.get("order", set())}
        con.close()
        snap = StorefrontResource(db_url=f"sqlite:///{db}").read_snapshot(CFG.tracking_pattern)
    for table, raw in RAW.items():
        assert snap.read_counts[raw] == counts[table]
        loaded = snap.frames()[raw].height
        assert counts[table] == loaded + snap.reject_counts[raw], (table, edits)
        _count(f"storefront {table}", counts[table], loaded, snap.reject_counts[raw])
    assert snap.rejects.height == sum(snap.reject_counts.values())
    lines = {r["order_product_id"]: r for r in snap.order_lines.iter_rows(named=True)}
    for line_id, (_, order_id, model, quantity) in untouched_lines.items():  # valid rows load unchanged
        if line_id in lines:
            assert (lines[line_id]["order_id"], lines[line_id]["model"], lines[line_id]["quantity"]) == \
                (order_id, model, quantity)


def test_a_number_too_large_for_its_decimal_is_a_reject_not_a_crash(tmp_path):
    """Found by the fuzzing above: 1e24 in oc_order.total raised decimal.InvalidOperation."""
    db = build_opencart(tmp_path / "shop.sqlite")
    con = sqlite3.connect(db)
    order_id = con.execute("SELECT min(order_id) FROM oc_order").fetchone()[0]
    con.execute("UPDATE oc_order SET total = 1e24 WHERE order_id = ?", (order_id,))
    con.commit()
    con.close()
    snap = StorefrontResource(db_url=f"sqlite:///{db}").read_snapshot(CFG.tracking_pattern)
    reject = next(r for r in snap.rejects.iter_rows(named=True) if r["record_key"] == f"order:{order_id}")
    assert "out of range" in reject["reason"]


# --------------------------------------------------------------------------- WMS records

STATES = ["ReturnCreated", "ArrivedToWarehouse", "Completed"]
GRADES = ["WaitingToBeProcessed", "Missing", "Damaged", "Undamaged"]
stamps = st.sampled_from(["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.5Z", "2026-03-01T10:00:00.123456Z",
                          "2026-03-01T10:00:00+02:00"])


@st.composite
def wms_return(draw, n: int) -> dict:
    return {"source": "WMS", "returnReferenceNumber": f"R-{n}", "salesOrderReferenceNumber": str(n),
            "state": draw(st.sampled_from(STATES)), "trackingId": None, "createdAt": draw(stamps),
            "updatedAt": draw(stamps), "arrivedToWarehouseAt": None, "completedAt": None, "notes": "call Anna",
            "lineItems": [{"lineItemReferenceNumber": str(i), "sku": "TS-RED", "processedAt": draw(stamps),
                           "state": draw(st.sampled_from(GRADES))} for i in range(draw(st.integers(0, 3)))]}


@st.composite
def wms_items(draw) -> tuple[list, set[str]]:
    items, valid = [], set()
    for n in range(draw(st.integers(0, 10))):
        record = draw(wms_return(n))
        kind = draw(st.sampled_from(["valid", "mangled", "json"]))
        if kind == "valid":
            valid.add(record["returnReferenceNumber"])
            items.append(record)
        elif kind == "mangled":
            target = record if draw(st.booleans()) or not record["lineItems"] else record["lineItems"][0]
            target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
            items.append(record)
        else:
            items.append(draw(json_values))
    return items, valid


@FUZZ
@given(wms_items())
def test_wms_return_parser_loads_or_rejects_every_record(case):
    from assets.sources.wms import returns_to_frames

    items, valid = case
    returns, units, rejects = returns_to_frames(items, "wms_returns")
    assert len(items) == returns.height + rejects.height
    _count("wms returns", len(items), returns.height, rejects.height)
    loaded = set(returns["return_reference"].to_list())
    assert valid <= loaded  # valid records load, with all their units unchanged
    for record in items:
        if isinstance(record, dict) and str(record.get("returnReferenceNumber")) in valid:
            got = units.filter(pl.col("return_reference") == record["returnReferenceNumber"])
            assert sorted(got["state"].to_list()) == sorted(li["state"] for li in record["lineItems"])
    assert all("call Anna" not in (p or "") for p in rejects["payload"].to_list()), "warehouse notes are never kept"


@FUZZ
@given(st.lists(st.one_of(json_values, st.fixed_dictionaries({
    "id": st.just("a"), "transactionNumber": st.text(min_size=1, max_size=5), "transactionType": st.just("Found"),
    "completedAt": st.one_of(stamps, json_values), "tag": st.none(),
    "lineItems": st.lists(st.fixed_dictionaries({"sku": st.just("TS-RED"), "lostAmount": st.integers(0, 3),
                                                 "foundAmount": st.one_of(st.integers(0, 3), json_values),
                                                 "putInQuarantineAmount": st.just(0),
                                                 "releaseFromQuarantineAmount": st.just(0)}), max_size=2)})),
    max_size=8))
def test_wms_adjustment_parser_loads_or_rejects_every_record(items):
    from assets.sources.wms import adjustments_to_frames

    heads, _lines, rejects = adjustments_to_frames(items)
    assert len(items) == heads.height + rejects.height
    _count("wms adjustments", len(items), heads.height, rejects.height)


COUNT_FIELDS = ["totalStockAmount", "availableStock", "reservedStock", "receivedItemAmount", "damagedItemAmount",
                "expiredAmount", "lostItemAmount"]


@st.composite
def wms_stocks(draw) -> tuple[list, dict]:
    """Stock records: valid ones (kept with their counts), mangled ones (one field replaced by any
    JSON value) and items that are not records at all."""
    items, valid = [], {}
    for n in range(draw(st.integers(0, 8))):
        record = {"id": str(n), "sku": f"SKU-{n}", "name": "Tee", "updatedAt": draw(stamps), "barcodes": ["123"],
                  **{f: draw(st.one_of(st.none(), st.integers(0, 10**6))) for f in COUNT_FIELDS}}
        kind = draw(st.sampled_from(["valid", "mangled", "junk"]))
        if kind == "valid":
            valid[record["sku"]] = record
            items.append(record)
        elif kind == "mangled":
            record[draw(st.sampled_from(["sku", "updatedAt", *COUNT_FIELDS]))] = draw(json_values)
            items.append(record)
        else:
            items.append(draw(json_values))
    return items, valid


@FUZZ
@given(wms_stocks())
def test_wms_stock_parser_loads_or_rejects_every_record(case):
    from assets.sources.wms import stocks_to_frames

    items, valid = case
    stocks, rejects = stocks_to_frames(items)
    assert len(items) == stocks.height + rejects.height
    _count("wms stocks", len(items), stocks.height, rejects.height)
    loaded = {row["sku"]: row for row in stocks.iter_rows(named=True)}
    for sku, record in valid.items():  # valid records load unchanged
        assert loaded[sku]["available_stock"] == record["availableStock"]
        assert loaded[sku]["lost_item_amount"] == record["lostItemAmount"]
    assert all(r and r.strip() for r in rejects["reason"].to_list()), "every reject says why"
