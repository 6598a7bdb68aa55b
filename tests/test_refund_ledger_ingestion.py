"""Refund ledger ingestion: hand-written JSON-lines message files -> raw.refund_lines and recon.rejects."""
from __future__ import annotations

import gzip
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
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


def rows(world):
    """{(credit note, order line): [its rows, one per version, by version_date]} (raw.refund_lines
    holds the archive once, for every date)"""
    cols = ("credit_note_number", "order_line_reference", "order_line", "order_reference", "refund_type",
            "status_code", "status_date", "currency", "refunded_gross", "refunded_net", "refunded_vat",
            "total_gross", "payment_count", "message_id", "source_file", "source_line", "delivery_count",
            "rma_reference", "credit_note_date", "version_key", "version_date")
    result = query(world, f"SELECT {', '.join(cols)} FROM raw.refund_lines "
                          f"ORDER BY credit_note_number, order_line_reference, version_date")
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
    assert reason == "params.refund.lines[0].payments[0].details.cost_gross is not a number: '12,50'"
    key, reason, _ = reject_by_prefix(world, f"{FILE2}:5")
    assert key == f"{FILE2}:5:CN-6" and "conflicting redelivery" in reason
    _, reason, _ = reject_by_prefix(world, f"{FILE2}:7")
    assert reason == "params.refund.credit_note_number is missing"
    key, reason, _ = reject_by_prefix(world, f"{FILE2}:8")
    assert key.endswith(":CN-7")
    assert reason == "params.refund.credit_note_date is not an ISO-8601 timestamp: '31/03/2026'"
    _, reason, _ = reject_by_prefix(world, f"{FILE2}:9")
    assert reason == "params.refund.lines[0].payments[0].details.cost_net is missing"
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


def test_rerun_replaces_and_other_dates_share_the_versions(world):
    materialize(world)
    first = sorted(map(repr, query(world, "SELECT * FROM raw.refund_lines ORDER BY ALL")))
    first_rejects = sorted(map(repr, query(world, "SELECT * FROM recon.rejects ORDER BY ALL")))
    materialize(world)
    assert sorted(map(repr, query(world, "SELECT * FROM raw.refund_lines ORDER BY ALL"))) == first
    assert sorted(map(repr, query(world, "SELECT * FROM recon.rejects ORDER BY ALL"))) == first_rejects
    materialize(world, partition=OTHER_PARTITION)
    # the versions are stored once, not per date; each date's rejects list every current reject
    assert query(world, "SELECT count(*) FROM raw.refund_lines")[0][0] == ROW_COUNT
    assert len(rejects(world, OTHER_PARTITION)) == len(rejects(world, PARTITION)) == 7
    # a new delivery file: the next run of the same date sees it, without duplicating anything
    (world["ledger"] / "2026-04-01.jsonl").write_text(CN1 + "\n" + refund("CN-10", "1002", [
        line("3", payment("1.00", "1.00", "0.00"))]) + "\n")
    materialize(world)
    got = rows(world)
    assert set(got) == VALID_ROWS | {("CN-10", "3")}
    assert one(got, ("CN-1", "2"))["delivery_count"] == 4
    assert query(world, "SELECT count(*) FROM raw.refund_lines")[0][0] == ROW_COUNT + 1


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
    # the payload of a rejected message has only the fields the models name: no user, no free text
    _, _, payload = reject_by_prefix(world, f"{FILE1}:6")
    kept = json.loads(payload)["params"]["refund"]
    assert "user" not in kept and "reason_description" not in kept["lines"][0]
    assert "vat_detail" not in kept["lines"][0]["payments"][0]["details"]
    assert kept["lines"][0]["payments"][0]["details"]["cost_gross"] == "12,50"
    assert (kept["credit_note_number"], kept["order_id"]) == ("CN-3", "1002")
    # a line that is not JSON can only be shown as it is: with the user hidden
    _, _, payload = reject_by_prefix(world, f"{FILE2}:10")
    assert payload.startswith('{"jsonrpc": "2.0", "user": "[redacted]", "junk": "xxx')


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
    assert reasons["a.jsonl:4"] == "params.refund is missing"
    assert reasons["a.jsonl:5"] == "not a JSON-RPC message: record is not a JSON object (a JSON array)"
    assert reasons["a.jsonl:7:CN-C"] == "params.refund.lines[0].payments[0].details.cost_gross is missing"
    assert reasons["a.jsonl:8:CN-D"] == "params.refund.lines is empty: a credit note has at least one line"
    assert read.stats.duplicates_collapsed == 1 and read.stats.rejects == 4
    assert read.stats.credit_notes == 2 and read.stats.versions == 3


# --------------------------------------------------------------------------- versions, exact amounts, grain, files

def read(ledger: Path):
    return RefundLedgerResource(path=str(ledger)).read_ledger()


def by_version_date(frame, credit_note):
    return frame.filter(credit_note_number=credit_note).sort("version_date").rows(named=True)


def test_out_of_order_redelivery_across_files_keeps_both_versions(tmp_path):
    ledger = tmp_path / "ledger"
    released = refund("CN-R", "2001", [line("7", payment("30.00", "25.21", "4.79"))], status="RELEASED",
                      status_date="2026-03-31T09:00:00Z", msg_id="r-released")
    pending = refund("CN-R", "2001", [line("7", payment("30.00", "25.21", "4.79", code="PENDING"))],
                     status="PENDING", status_date="2026-03-30T09:00:00Z", msg_id="r-pending")
    write_lines(ledger / "1-first.jsonl", [released])   # the newer state comes first...
    write_lines(ledger / "2-second.jsonl", [pending])   # ... the stale PENDING after it
    forward = read(ledger)
    old, new = by_version_date(forward.refund_lines, "CN-R")
    assert (old["status_code"], old["version_date"]) == ("PENDING", datetime(2026, 3, 30, 9, 0))
    assert (old["source_file"], old["source_line"], old["message_id"]) == ("2-second.jsonl", 1, "r-pending")
    assert old["refunded_gross"] == Decimal("0")
    assert (new["status_code"], new["version_date"]) == ("RELEASED", datetime(2026, 3, 31, 9, 0))
    assert (new["source_file"], new["message_id"]) == ("1-first.jsonl", "r-released")
    assert new["refunded_gross"] == Decimal("30.00")
    assert old["version_key"] != new["version_key"] and len(new["version_key"]) == 16
    assert forward.rejects.height == 0 and forward.stats.duplicates_collapsed == 0
    assert forward.stats.credit_notes == 1 and forward.stats.versions == 2
    # the file order does not change the versions (only which delivery is "first")
    (ledger / "1-first.jsonl").rename(ledger / "3-third.jsonl")
    backward = read(ledger)
    keep = ["version_key", "version_date", "status_code", "refunded_gross", "delivery_count"]
    assert backward.refund_lines.sort("version_date").select(keep).rows() == \
        forward.refund_lines.sort("version_date").select(keep).rows()
    # the raw-table uniqueness check accepts several versions of one credit note line
    assert check_refund_lines_unique_credit_note_line(forward.refund_lines).success


def test_identical_redelivery_collapses_into_one_version(tmp_path):
    ledger = tmp_path / "ledger"
    first = refund("CN-I", "2002", [line("8", payment("10.00", "8.40", "1.60")),
                                    line("SHIPPING", payment("4.99", "4.19", "0.80"))], msg_id="i-1")
    # the same content: another message id, the lines in another order, "10.0" for "10.00"
    again = json.loads(first)
    again["id"] = "i-2"
    again["params"]["refund"]["lines"].reverse()
    again["params"]["refund"]["lines"][1]["payments"][0]["details"]["cost_gross"] = "10.0"
    write_lines(ledger / "a.jsonl", [first])
    write_lines(ledger / "b.jsonl", [json.dumps(again)])
    result = read(ledger)
    frame = result.refund_lines
    assert frame.height == 2 and set(frame["order_line_reference"]) == {"8", "SHIPPING"}
    assert frame["version_key"].n_unique() == 1 and frame["version_date"].n_unique() == 1
    assert set(frame["delivery_count"]) == {2}
    assert set(frame["message_id"]) == {"i-1"} and set(frame["source_file"]) == {"a.jsonl"}
    assert frame.filter(order_line_reference="8")["refunded_gross"][0] == Decimal("10.00")
    assert result.stats.duplicates_collapsed == 1 and result.stats.versions == 1 and result.rejects.height == 0


def test_null_status_date_with_different_content_is_a_conflicting_redelivery(tmp_path):
    ledger = tmp_path / "ledger"
    a = refund("CN-N", "2003", [line("9", payment("5.00", "5.00", "0.00"))], status="PENDING", status_date=None)
    b = refund("CN-N", "2003", [line("9", payment("6.00", "6.00", "0.00"))], status="PENDING", status_date=None)
    # no status date, dated like the version already seen (credit_note_date == its status.date)
    dated = refund("CN-M", "2004", [line("9", payment("5.00", "5.00", "0.00"))],
                   status_date="2026-03-30T12:00:00Z")
    undated = refund("CN-M", "2004", [line("9", payment("7.00", "7.00", "0.00"))], status="PENDING",
                     status_date=None, credit_note_date="2026-03-30T12:00:00Z")
    write_lines(ledger / "a.jsonl", [a, b, dated, undated])
    result = read(ledger)
    frame = result.refund_lines
    assert frame.height == 2
    assert frame.filter(credit_note_number="CN-N")["refunded_gross"][0] == Decimal("5.00")  # the first is kept
    assert frame.filter(credit_note_number="CN-M")["refunded_gross"][0] == Decimal("5.00")
    assert result.stats.duplicates_collapsed == 0   # reported, not counted as a duplicate
    rejected = result.rejects.sort("record_key").rows(named=True)
    assert [r["record_key"] for r in rejected] == ["a.jsonl:2:CN-N", "a.jsonl:4:CN-M"]
    for r, cn, order in zip(rejected, ("CN-N", "CN-M"), ("2003", "2004")):
        assert "conflicting redelivery" in r["reason"] and "a.jsonl:" in r["reason"]
        assert (r["credit_note_number"], r["order_reference"]) == (cn, order)


def test_amounts_keep_their_exact_decimal_value(tmp_path):
    ledger = tmp_path / "ledger"
    tiny, huge = "0.0000000001", "9999999999999999999999999999.9999999998"
    write_lines(ledger / "a.jsonl", [
        refund("CN-X", "3001", [line("1", payment("108.005", "100.0046", "8.0004"))]),                  # 1
        refund("CN-Y", "3001", [line("1", payment(tiny, tiny, "0"), payment(huge, huge, "0"))]),        # 2
        # JSON numbers, and trailing zeros beyond 10 places (still exact)
        refund("CN-Z", "3001", [line("1", payment(12.345, 12, "0.3450000000000"))]),                   # 3
        refund("CN-P", "3001", [line("1", payment("1.00000000001", "1", "0"))]),                        # 4
        refund("CN-Q", "3001", [line("1", payment("1e28", "1", "0"))]),                                 # 5
        refund("CN-S", "3001", [line("1", payment("NaN", "1", "0"))]),                                  # 6
        refund("CN-T", "3001", [line("1", payment(huge, "1", "0"), payment(huge, "1", "0"))]),          # 7
    ])
    result = read(ledger)
    got = {r["credit_note_number"]: r for r in result.refund_lines.rows(named=True)}
    assert got["CN-X"]["refunded_gross"] == Decimal("108.005")
    assert (got["CN-X"]["refunded_net"], got["CN-X"]["refunded_vat"]) == (Decimal("100.0046"), Decimal("8.0004"))
    assert got["CN-Y"]["refunded_gross"] == Decimal("9999999999999999999999999999.9999999999")  # exact sum
    assert got["CN-Z"]["refunded_gross"] == Decimal("12.345") and got["CN-Z"]["refunded_vat"] == Decimal("0.345")
    assert result.refund_lines.schema["refunded_gross"] == pl.Decimal(38, 10)
    reasons = dict(zip(result.rejects["record_key"], result.rejects["reason"]))
    assert set(reasons) == {"a.jsonl:4:CN-P", "a.jsonl:5:CN-Q", "a.jsonl:6:CN-S", "a.jsonl:7:CN-T"}
    gross = "params.refund.lines[0].payments[0].details.cost_gross"
    assert reasons["a.jsonl:4:CN-P"] == \
        f"{gross} has more than 10 decimal places and cannot be kept exactly: '1.00000000001'"
    assert reasons["a.jsonl:5:CN-Q"] == f"{gross} is out of range for DECIMAL(38,10): '1e28'"
    assert reasons["a.jsonl:6:CN-S"] == f"{gross} is not a finite number: 'NaN'"
    assert reasons["a.jsonl:7:CN-T"] == \
        "params.refund has a sum of amounts out of range (abs >= 10^28, DECIMAL(38,10)) for order_item_id 1"


def test_exact_amount_is_stored_in_the_warehouse(tmp_path):
    ledger = tmp_path / "ledger"
    write_lines(ledger / "a.jsonl", [refund("CN-X", "3001", [line("1", payment("108.005", "100.0046", "8.0004"))])])
    world = {"warehouse": tmp_path / "w.duckdb",
             "resources": {"refund_ledger": RefundLedgerResource(path=str(ledger)),
                           "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))}}
    assert materialize(world).success
    assert query(world, "SELECT refunded_gross, refunded_vat FROM raw.refund_lines") == \
        [(Decimal("108.005"), Decimal("8.0004"))]


def test_rejects_carry_the_credit_note_and_order_when_readable(world):
    result = materialize(world)
    assert result.success
    grain = {r[0]: r[1:] for r in query(world, "SELECT record_key, credit_note_number, order_reference, "
                                               "order_line_reference, rma_reference, return_reference "
                                               "FROM recon.rejects WHERE source = 'refund_ledger'")}
    assert grain[f"{FILE1}:6:CN-3"] == ("CN-3", "1002", None, None, None)   # non-numeric amount
    assert grain[f"{FILE2}:5:CN-6"] == ("CN-6", "1003", None, None, None)   # conflicting redelivery
    assert grain[f"{FILE2}:7"] == (None, "1003", None, None, None)          # no credit note, but an order
    assert grain[f"{FILE2}:8:CN-7"][:2] == ("CN-7", "1003")                 # bad date
    assert grain[f"{FILE1}:4"] == (None,) * 5                               # invalid JSON: nothing readable
    # a numeric order id is the order reference as a string
    ledger = world["ledger"].parent / "numeric"
    body = json.loads(refund("CN-11", "0", [line("1", payment("x", "1", "0"))]))
    body["params"]["refund"]["order_id"] = 1004
    write_lines(ledger / "a.jsonl", [json.dumps(body)])
    rejected = read(ledger).rejects.row(0, named=True)
    assert (rejected["credit_note_number"], rejected["order_reference"]) == ("CN-11", "1004")
    assert rejected["reason"] == "params.refund.lines[0].payments[0].details.cost_gross is not a number: 'x'"


def test_gzip_files_and_subfolders_are_read_and_other_files_reported(tmp_path):
    ledger = tmp_path / "ledger"
    write_lines(ledger / "2026-03-30.jsonl", [CN1])
    write_lines(ledger / "2026-03-31.jsonl.gz", [CN1, refund("CN-G", "1001", [line("2", payment("1.00", "1", "0"))])],
                gz=True)
    write_lines(ledger / "archive" / "2026-02" / "old.jsonl.gz",
                [refund("CN-H", "1001", [line("2", payment("2.00", "2", "0"))]), "{broken"], gz=True)
    write_lines(ledger / "archive" / "notes.jsonl", [refund("CN-S", "1001", [line("2", payment("3.00", "3", "0"))])])
    (ledger / "README.txt").write_text("not a ledger file {")
    (ledger / "archive" / "dump.json").write_text("{}")
    truncated = refund("CN-T", "1001", [line("2", payment("4.00", "4", "0"))])
    (ledger / "broken.jsonl.gz").write_bytes(gzip.compress((truncated + "\n" + truncated + "\n").encode())[:-12])
    (ledger / "plain.jsonl.gz").write_text("{}\n")  # not gzip at all
    result = read(ledger)
    frame = result.refund_lines
    assert set(frame["credit_note_number"]) - {"CN-T"} == {"CN-1", "CN-G", "CN-H", "CN-S"}
    cn1 = frame.filter(credit_note_number="CN-1").row(0, named=True)
    assert cn1["delivery_count"] == 2 and cn1["source_file"] == "2026-03-30.jsonl"
    assert frame.filter(credit_note_number="CN-G")["source_file"][0] == "2026-03-31.jsonl.gz"
    assert frame.filter(credit_note_number="CN-H")["source_file"][0] == "archive/2026-02/old.jsonl.gz"
    assert frame.filter(credit_note_number="CN-S")["source_file"][0] == "archive/notes.jsonl"
    keys = list(result.rejects["record_key"])
    assert "archive/2026-02/old.jsonl.gz:2" in keys   # record_key uses the relative path
    for name in ("broken.jsonl.gz:", "plain.jsonl.gz:1"):
        found = result.rejects.filter(pl.col("record_key").str.starts_with(name))
        assert found.height == 1 and "gzip file is corrupt or truncated" in found["reason"][0], name
    assert result.stats.files == 6
    assert result.stats.files_skipped == 2
    assert result.stats.skipped == [("README.txt", "not a .jsonl or .jsonl.gz file"),
                                    ("archive/dump.json", "not a .jsonl or .jsonl.gz file")]
    # the asset says so in its metadata
    world = {"resources": {"refund_ledger": RefundLedgerResource(path=str(ledger)),
                           "warehouse": WarehouseResource(path=str(tmp_path / "w.duckdb"))}}
    meta = materialize(world).get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert meta["files_skipped"].value == 2 and meta["files_read"].value == 6
    assert "README.txt" in meta["skipped_files"].value and "archive/dump.json" in meta["skipped_files"].value


def test_a_reject_reason_is_the_models_with_every_problem_located(tmp_path):
    from pipelines.records.base import payload, validate
    from pipelines.records.refund_ledger import RefundMessage

    message = json.loads(refund("CN-E", "4001", [line("1", payment("1.00", "1.00", "0.00"),
                                                      payment("1,00", "1.00", "0.00"))],
                                credit_note_date="tomorrow", currency="euro"))
    write_lines(tmp_path / "ledger" / "a.jsonl", [json.dumps(message)])
    rejected = read(tmp_path / "ledger").rejects.rows(named=True)
    assert len(rejected) == 1
    r = rejected[0]
    assert r["record_key"] == "a.jsonl:1:CN-E" and (r["credit_note_number"], r["order_reference"]) == ("CN-E", "4001")
    # every problem, in field order, each located from the message's root
    assert r["reason"] == ("params.refund.credit_note_date is not an ISO-8601 timestamp: 'tomorrow'; "
                           "params.refund.currency is not a 3-letter ISO 4217 currency code: 'euro'; "
                           "params.refund.lines[0].payments[1].details.cost_gross is not a number: '1,00'")
    # ... which is the model's reason and the model's allow-listed payload, nothing hand-written
    assert (r["reason"], r["payload"]) == (validate(RefundMessage, message)[1], payload(RefundMessage, message))
    assert STAFF not in r["payload"] and "Arrived broken" not in r["payload"]


def test_version_keys_are_those_stored_before_the_models(world):
    """The warehouse holds versions under these keys (computed by the hand-written parser the
    models replaced): the same content must give the same key, or every stored version would
    look new."""
    frame = read(world["ledger"]).refund_lines
    got = {(cn, status, item): key for cn, status, item, key in
           frame.select("credit_note_number", "status_code", "order_line_reference", "version_key").rows()}
    assert got == {
        ("CN-1", "RELEASED", "2"): "0d96efb93b5e700a",
        ("CN-2", "RELEASED", "2"): "beed75d4d7e180fe",
        ("CN-2", "RELEASED", "SHIPPING"): "beed75d4d7e180fe",
        ("CN-4", "RELEASED", "3"): "0bb4a67136cd3e90",
        ("CN-5", "PENDING", "4"): "f3be7fbe9f92c019",
        ("CN-5", "RELEASED", "4"): "643340e9341c903b",
        ("CN-6", "RELEASED", "5"): "2873f558b9b23d12",
        ("CN-9", "RELEASED", "1"): "6d1854334ce5029e",
    }


def test_an_unparseable_line_is_kept_with_user_and_descriptions_hidden(tmp_path):
    cut = refund("CN-K", "1", [line("1", payment("1.00", "1.00", "0.00"))])
    at = cut.index(STAFF) + 6   # cut inside the user's name: no closing quote
    write_lines(tmp_path / "ledger" / "a.jsonl", [cut[:at], cut.replace("}}}", "}}")])
    rejected = dict(zip(*read(tmp_path / "ledger").rejects.select("record_key", "payload")))
    assert rejected["a.jsonl:1"].endswith('"user": "[redacted]"') and "Staffy" not in rejected["a.jsonl:1"]
    assert '"reason_description": "[redacted]"' in rejected["a.jsonl:2"]
    assert STAFF not in rejected["a.jsonl:2"] and "Arrived broken" not in rejected["a.jsonl:2"]
