"""Refund ledger ingestion: hand-written JSON-lines message files -> raw.refund_lines and recon.rejects."""
from __future__ import annotations

import gzip
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.sources.refund_ledger import refund_lines
from checks.refund_ledger_checks import check_refund_lines_unique_credit_note_line
from pipelines.errors import SourceUnavailable
from pipelines.resources.refund_ledger import REFUND_METHOD, RefundLedgerResource
from pipelines.resources.warehouse import WarehouseResource

PARTITION = "2026-03-31"
OTHER_PARTITION = "2026-03-30"
STAFF = "Staffy McStaffface"
FILE1 = "2026-03-30.jsonl"
FILE2 = "2026-03-31.jsonl"


def payment(gross, net, vat, code="REFUNDED"):
    return {"details": {"cost_gross": gross, "cost_net": net, "cost_vat": vat, "vat_rate": "19.00",
                        "vat_detail": []},
            "status": {"code": code, "name": code.title()}}


def line(item, *payments, order_line=None, reason="DAMAGED"):
    return {"order_line": order_line or f"L-{item}", "order_item_id": item, "reason": reason,
            "reason_description": "Arrived broken", "payments": list(payments)}


def refund(cn, order_id, lines, *, status="RELEASED", status_date="2026-03-30T12:00:00Z", msg_id=None,
           refund_type="Return", rma="RMA-501", currency="EUR", credit_note_date="2026-03-30T11:00:00Z", **extra):
    body = {"order_id": order_id, "store_id": "1", "sales_channel_id": "web", "credit_note_number": cn,
            "credit_note_date": credit_note_date, "rma": rma, "refund_type": refund_type,
            "refund_reason": "Return", "user": STAFF,
            "status": {"code": status, "name": status.title(), "reason_code": None, "reason_name": None,
                       "date": status_date},
            "currency": currency, "lines": lines, **extra}
    return json.dumps({"jsonrpc": "2.0", "id": msg_id or f"msg-{cn}", "method": REFUND_METHOD,
                       "params": {"refund": body}})


def other(method, n):
    return json.dumps({"jsonrpc": "2.0", "id": f"other-{n}", "method": method,
                       "params": {"return": {"rma": "RMA-1", "user": STAFF}}})


CN1 = refund("CN-1", "1001", [line("2", payment("59.90", "50.34", "9.56"))])
CN5_RELEASED = refund("CN-5", "1003", [line("4", payment("40.00", "40.00", "0.00"))],
                      status="RELEASED", status_date="2026-03-31T08:00:00+02:00", msg_id="m-5b")
CN5_PENDING = refund("CN-5", "1003", [line("4", payment("40.00", "40.00", "0.00", code="PENDING"))],
                     status="PENDING", status_date="2026-03-30T10:00:00Z", msg_id="m-5a")
LONG_BAD_LINE = '{"jsonrpc": "2.0", "user": "' + STAFF + '", "junk": "' + "x" * 5000

FILE1_LINES = [
    CN1,                                                                                   # 1
    other("magento.postsales.return_management.updated", 1),                              # 2
    refund("CN-2", "1001", [line("2", payment("59.90", "50.34", "9.56")),                  # 3
                            line("SHIPPING", payment("4.99", "4.19", "0.80"))]),
    '{"jsonrpc": "2.0", "id": "broken", "method": "' + REFUND_METHOD + '", "params": {',   # 4 malformed
    CN1,                                                                                   # 5 same-file redelivery
    refund("CN-3", "1002", [line("3", payment("12,50", "10.50", "2.00"))]),                # 6 non-numeric amount
    "",                                                                                    # 7 blank
    CN5_RELEASED,                                                                          # 8 (later status date)
]
FILE2_LINES = [
    CN1,                                                                                   # 1 other-file redelivery
    refund("CN-4", "1002", [line("3", payment("10.00", "8.40", "1.60"),                    # 2 same item twice
                                 payment("5.00", "4.20", "0.80", code="PENDING")),
                            line("3", payment("2.50", "2.10", "0.40"), order_line="L-3b")],
           currency=None),
    CN5_PENDING,                                                                           # 3 stale redelivery
    refund("CN-6", "1003", [line("5", payment("20.00", "20.00", "0.00"))]),                # 4
    refund("CN-6", "1003", [line("5", payment("25.00", "25.00", "0.00"))]),                # 5 conflicting
    other("magento.postsales.return_management.authorize", 2),                             # 6
    refund(None, "1003", [line("5", payment("1.00", "1.00", "0.00"))]),                    # 7 no credit note
    refund("CN-7", "1003", [line("5", payment("1.00", "1.00", "0.00"))],                   # 8 bad date
           credit_note_date="31/03/2026"),
    refund("CN-8", "1003", [line("5", {"details": {"cost_gross": "3.00", "cost_vat": "0.00"},  # 9 missing net
                                       "status": {"code": "REFUNDED"}})]),
    LONG_BAD_LINE,                                                                         # 10 malformed, long
    refund("CN-9", "1001", [line("1", payment("59.50", "50.00", "9.50"))], rma=None,      # 11 appeasement
           refund_type="Appeasement"),
]
VALID_ROWS = {("CN-1", "2"), ("CN-2", "2"), ("CN-2", "SHIPPING"), ("CN-4", "3"), ("CN-5", "4"), ("CN-6", "5"),
              ("CN-9", "1")}
ROW_COUNT = len(VALID_ROWS) + 1  # CN-5 has two versions (PENDING, then RELEASED): one row each


def write_ledger(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / FILE1).write_text("\n".join(FILE1_LINES) + "\n")
    (directory / FILE2).write_text("\n".join(FILE2_LINES) + "\n")
    (directory / "README.txt").write_text("not a ledger file {")
    return directory


@pytest.fixture()
def world(tmp_path):
    ledger = write_ledger(tmp_path / "ledger")
    return {
        "ledger": ledger,
        "warehouse": tmp_path / "warehouse.duckdb",
        "resources": {
            "refund_ledger": RefundLedgerResource(path=str(ledger)),
            "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
        },
    }


def materialize(world, partition=PARTITION, **kwargs):
    return dg.materialize([refund_lines], partition_key=partition, resources=world["resources"], **kwargs)


def query(world, sql, params=None):
    con = duckdb.connect(str(world["warehouse"]), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def rows(world, partition=PARTITION):
    """{(credit note, order line): [its rows, one per version, by version_date]}"""
    cols = ("credit_note_number", "order_line_reference", "order_line", "order_reference", "refund_type",
            "status_code", "status_date", "currency", "refunded_gross", "refunded_net", "refunded_vat",
            "total_gross", "payment_count", "message_id", "source_file", "source_line", "delivery_count",
            "rma_reference", "credit_note_date", "version_key", "version_date")
    result = query(world, f"SELECT {', '.join(cols)} FROM raw.refund_lines WHERE business_date = $d "
                          f"ORDER BY credit_note_number, order_line_reference, version_date",
                   {"d": date.fromisoformat(partition)})
    got: dict[tuple[str, str], list[dict]] = {}
    for r in result:
        got.setdefault((r[0], r[1]), []).append(dict(zip(cols, r)))
    return got


def one(got, key):
    """The row of a credit note line that has a single version."""
    assert len(got[key]) == 1, (key, got[key])
    return got[key][0]


def rejects(world, partition=PARTITION):
    return query(world, "SELECT record_key, reason, payload FROM recon.rejects "
                        "WHERE source = 'refund_ledger' AND business_date = $d ORDER BY record_key",
                 {"d": date.fromisoformat(partition)})


def write_lines(path: Path, lines, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    if gz:
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def reject_by_prefix(world, prefix):
    found = [r for r in rejects(world) if r[0].startswith(prefix)]
    assert len(found) == 1, (prefix, rejects(world))
    return found[0]


def test_every_valid_refund_loads_once(world):
    result = materialize(world)
    assert result.success
    got = rows(world)
    assert set(got) == VALID_ROWS
    total = query(world, "SELECT count(*) FROM raw.refund_lines")[0][0]
    assert total == ROW_COUNT
    assert query(world, "SELECT count(*) FROM raw.refund_lines WHERE version_key IS NULL "
                        "OR version_date IS NULL")[0][0] == 0
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["dagster/row_count"].value == ROW_COUNT


def test_redelivered_messages_collapse_and_every_version_is_kept(world):
    materialize(world)
    got = rows(world)
    cn1 = one(got, ("CN-1", "2"))  # identical content: one version
    assert cn1["delivery_count"] == 3  # twice in file 1, once in file 2
    assert (cn1["source_file"], cn1["source_line"]) == (FILE1, 1)  # the first delivery
    assert cn1["refunded_gross"] == Decimal("59.90")  # not 3 x 59.90
    assert cn1["version_date"] == cn1["status_date"] == datetime(2026, 3, 30, 12, 0)
    # CN-5: RELEASED (file 1) and the older PENDING (file 2, arrived later) are two versions, each
    # with its own date; the reconciliation takes the latest one dated <= T
    pending, released = got[("CN-5", "4")]
    assert pending["status_code"] == "PENDING" and pending["version_date"] == datetime(2026, 3, 30, 10, 0)
    assert pending["refunded_gross"] == Decimal("0") and pending["total_gross"] == Decimal("40.00")
    assert (pending["source_file"], pending["source_line"], pending["message_id"]) == (FILE2, 3, "m-5a")
    assert released["status_code"] == "RELEASED" and released["version_date"] == datetime(2026, 3, 31, 6, 0)
    assert released["refunded_gross"] == Decimal("40.00") and released["message_id"] == "m-5b"
    assert (released["source_file"], released["source_line"]) == (FILE1, 8)
    assert pending["delivery_count"] == released["delivery_count"] == 1
    assert pending["version_key"] != released["version_key"]


def test_two_credit_notes_on_one_order_line_stay_two(world):
    materialize(world)
    got = rows(world)
    on_line_2 = {k for k in got if k[1] == "2"}
    assert on_line_2 == {("CN-1", "2"), ("CN-2", "2")}
    assert one(got, ("CN-2", "2"))["delivery_count"] == 1


def test_amounts_shipping_and_repeated_order_items(world):
    materialize(world)
    got = rows(world)
    shipping = one(got, ("CN-2", "SHIPPING"))
    assert (shipping["refunded_gross"], shipping["refunded_net"], shipping["refunded_vat"]) == \
        (Decimal("4.99"), Decimal("4.19"), Decimal("0.80"))
    cn4 = one(got, ("CN-4", "3"))  # the same order item listed twice: one row with the sums
    assert cn4["refunded_gross"] == Decimal("12.50")   # 10.00 + 2.50 REFUNDED, the PENDING 5.00 not
    assert cn4["refunded_net"] == Decimal("10.50") and cn4["refunded_vat"] == Decimal("2.00")
    assert cn4["total_gross"] == Decimal("17.50")
    assert cn4["payment_count"] == 3
    assert cn4["order_line"] == "L-3" and cn4["currency"] is None
    assert one(got, ("CN-1", "2"))["credit_note_date"] == datetime(2026, 3, 30, 11, 0)
    cn9 = one(got, ("CN-9", "1"))
    assert cn9["rma_reference"] is None and cn9["refund_type"] == "Appeasement"
    types = dict(query(world, "SELECT column_name, data_type FROM information_schema.columns "
                              "WHERE table_name = 'refund_lines'"))
    assert {types[c] for c in ("refunded_gross", "refunded_net", "refunded_vat", "total_gross")} == \
        {"DECIMAL(38,10)"}


def test_bad_lines_are_rejected_with_file_line_and_reason(world):
    result = materialize(world)
    assert result.success
    key, reason, payload = reject_by_prefix(world, f"{FILE1}:4")
    assert "invalid JSON" in reason and payload == FILE1_LINES[3]
    key, reason, payload = reject_by_prefix(world, f"{FILE1}:6")
    assert key == f"{FILE1}:6:CN-3"
    assert "non-numeric amount" in reason and "cost_gross" in reason and "12,50" in reason
    key, reason, _ = reject_by_prefix(world, f"{FILE2}:5")
    assert key == f"{FILE2}:5:CN-6" and "conflicting redelivery" in reason
    _, reason, _ = reject_by_prefix(world, f"{FILE2}:7")
    assert "missing credit_note_number" in reason
    key, reason, _ = reject_by_prefix(world, f"{FILE2}:8")
    assert key.endswith(":CN-7") and "bad date" in reason and "credit_note_date" in reason
    _, reason, _ = reject_by_prefix(world, f"{FILE2}:9")
    assert "missing amount" in reason and "cost_net" in reason
    _, reason, payload = reject_by_prefix(world, f"{FILE2}:10")
    assert "invalid JSON" in reason and len(payload) == 2000
    assert len(rejects(world)) == 7
    # the first CN-6 delivery is the one kept
    assert one(rows(world), ("CN-6", "5"))["refunded_gross"] == Decimal("20.00")
    assert one(rows(world), ("CN-6", "5"))["delivery_count"] == 1
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["rejects"].value == 7


def test_other_methods_are_ignored_and_counted(world):
    result = materialize(world)
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["ignored_other_methods"].value == 2
    assert meta["files_read"].value == 2
    assert meta["files_skipped"].value == 1  # README.txt
    assert meta["duplicates_collapsed"].value == 2   # CN-1 twice (the stale CN-5 is a version of its own)
    assert meta["credit_notes"].value == 6  # CN-1, 2, 4, 5, 6, 9
    assert meta["versions"].value == 7      # CN-5 twice
    assert meta["lines_read"].value == len(FILE1_LINES) + len(FILE2_LINES)
    assert meta["messages"].value == len(FILE1_LINES) + len(FILE2_LINES) - 3  # 2 malformed, 1 blank
    assert meta["refund_messages"].value == meta["messages"].value - 2
    assert not [r for r in rejects(world) if "other-" in r[2]]


def test_rerun_replaces_and_other_dates_are_separate(world):
    materialize(world)
    first = sorted(map(repr, query(world, "SELECT * FROM raw.refund_lines ORDER BY ALL")))
    first_rejects = sorted(map(repr, query(world, "SELECT * FROM recon.rejects ORDER BY ALL")))
    materialize(world)
    assert sorted(map(repr, query(world, "SELECT * FROM raw.refund_lines ORDER BY ALL"))) == first
    assert sorted(map(repr, query(world, "SELECT * FROM recon.rejects ORDER BY ALL"))) == first_rejects
    materialize(world, partition=OTHER_PARTITION)
    per_date = dict(query(world, "SELECT business_date, count(*) FROM raw.refund_lines GROUP BY ALL"))
    assert per_date == {date(2026, 3, 31): ROW_COUNT, date(2026, 3, 30): ROW_COUNT}
    assert len(rejects(world, OTHER_PARTITION)) == len(rejects(world, PARTITION)) == 7
    # a new delivery file: the next run of the same date sees it, without duplicating anything
    (world["ledger"] / "2026-04-01.jsonl").write_text(CN1 + "\n" + refund("CN-10", "1002", [
        line("3", payment("1.00", "1.00", "0.00"))]) + "\n")
    materialize(world)
    got = rows(world)
    assert set(got) == VALID_ROWS | {("CN-10", "3")}
    assert one(got, ("CN-1", "2"))["delivery_count"] == 4
    assert query(world, "SELECT count(*) FROM raw.refund_lines WHERE business_date = $d",
                 {"d": date(2026, 3, 31)})[0][0] == ROW_COUNT + 1


def test_staff_user_names_are_never_kept(world):
    materialize(world)
    columns = query(world, "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR'")
    for schema, table, column in columns:
        for needle in (STAFF, "Staffy"):
            assert query(world, f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", $n)',
                         {"n": needle})[0][0] == 0, (needle, schema, table, column)
    # free-text line descriptions are not loaded either
    assert query(world, "SELECT count(*) FROM raw.refund_lines WHERE contains(line_reason, 'Arrived broken')"
                        " OR contains(refund_reason, 'Arrived broken')")[0][0] == 0
    # the reject payload is the raw line, with only the user redacted
    _, _, payload = reject_by_prefix(world, f"{FILE1}:6")
    assert json.loads(payload)["params"]["refund"]["user"] == "[redacted]"
    assert json.loads(payload)["params"]["refund"]["lines"][0]["payments"][0]["details"]["cost_gross"] == "12,50"


def test_missing_directory_is_source_unavailable(tmp_path):
    missing = tmp_path / "no-such-ledger"
    with pytest.raises(SourceUnavailable, match="refund ledger directory not found"):
        RefundLedgerResource(path=str(missing)).read_ledger()
    result = dg.materialize([refund_lines], partition_key=PARTITION, raise_on_error=False, resources={
        "refund_ledger": RefundLedgerResource(path=str(missing)),
        "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))})
    assert not result.success


def test_empty_directory_loads_nothing(tmp_path):
    (tmp_path / "ledger").mkdir()
    read = RefundLedgerResource(path=str(tmp_path / "ledger")).read_ledger()
    assert read.refund_lines.height == 0 and read.rejects.height == 0 and read.stats.files == 0


def test_frame_columns_match_the_raw_table(world, tmp_path):
    read = RefundLedgerResource(path=str(world["ledger"])).read_ledger()
    con = duckdb.connect(str(tmp_path / "cols.duckdb"))
    from pipelines.resources.warehouse import ensure_schema
    ensure_schema(con)
    table_cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                            "table_schema = 'raw' AND table_name = 'refund_lines' "
                                            "ORDER BY ordinal_position").fetchall()]
    con.close()
    assert read.refund_lines.columns == [c for c in table_cols if c != "business_date"]
    assert "user" not in read.refund_lines.columns


def test_status_date_ordering_and_edge_messages(tmp_path):
    ledger = tmp_path / "ledger"
    undated = refund("CN-A", "1", [line("1", payment("1.00", "1.00", "0.00"))], status="PENDING", status_date=None)
    dated = refund("CN-A", "1", [line("1", payment("2.00", "2.00", "0.00"))], status="RELEASED",
                   status_date="2026-03-01T00:00:00Z", msg_id="dated")
    write_lines(ledger / "a.jsonl", [
        undated,                                                         # 1 version dated credit_note_date
        dated,                                                           # 2 another version
        undated,                                                         # 3 identical to 1: collapsed
        json.dumps({"jsonrpc": "2.0", "id": "x", "method": REFUND_METHOD, "params": {}}),   # 4 no refund
        json.dumps([1, 2, 3]),                                           # 5 not a message
        refund("CN-B", "1", [line("1", payment("1.005", "1.00", "0.005"))]),               # 6 3 decimals: fine
        refund("CN-C", "1", [line("1", payment(None, "1.00", "0.00"))]),                    # 7 missing gross
        refund("CN-D", "1", []),                                         # 8 no lines
    ])
    read = RefundLedgerResource(path=str(ledger)).read_ledger()
    frame = read.refund_lines.sort("credit_note_number", "version_date")
    assert frame.height == 3
    dated_row, undated_row, cn_b = frame.rows(named=True)
    assert dated_row["credit_note_number"] == "CN-A" and dated_row["message_id"] == "dated"
    assert dated_row["version_date"] == datetime(2026, 3, 1) and dated_row["delivery_count"] == 1
    assert dated_row["refunded_gross"] == Decimal("2.00") and dated_row["source_line"] == 2
    assert undated_row["credit_note_number"] == "CN-A" and undated_row["status_date"] is None
    assert undated_row["version_date"] == datetime(2026, 3, 30, 11, 0)  # its credit_note_date
    assert undated_row["delivery_count"] == 2 and undated_row["source_line"] == 1
    assert cn_b["credit_note_number"] == "CN-B" and cn_b["refunded_vat"] == Decimal("0.005")
    reasons = dict(zip(read.rejects["record_key"], read.rejects["reason"]))
    assert reasons["a.jsonl:4"] == "message has no params.refund object"
    assert "not a JSON-RPC message" in reasons["a.jsonl:5"]
    assert "missing amount" in reasons["a.jsonl:7:CN-C"] and "cost_gross" in reasons["a.jsonl:7:CN-C"]
    assert reasons["a.jsonl:8:CN-D"] == "refund has no lines"
    assert read.stats.duplicates_collapsed == 1 and read.stats.rejects == 4
    assert read.stats.credit_notes == 2 and read.stats.versions == 3
