"""The incremental refund ledger: a run parses only new or changed files (manifest: path, size,
mtime, sha256), forgets removed ones, stores each version once, and gives exactly what reading
the whole archive gives (``RefundLedgerResource.read_ledger``, the reference here)."""
from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from assets.sources.refund_ledger import refund_lines
from pipelines.config import load_config
from pipelines.reconcile import rebuild
from pipelines.resources.refund_ledger import RefundLedgerResource
from pipelines.resources.warehouse import WarehouseResource, connect
from test_refund_ledger_ingestion import (CN1, CN5_PENDING, FILE1, FILE2, FILE2_LINES, PARTITION, OTHER_PARTITION,
                                          line, payment, query, refund, write_ledger)

D1, D2 = date.fromisoformat(OTHER_PARTITION), date.fromisoformat(PARTITION)
LINES_COLUMNS = ("credit_note_number", "version_key", "version_date", "order_line_reference", "order_line",
                 "order_reference", "store_id", "sales_channel_id", "credit_note_date", "rma_reference",
                 "refund_type", "refund_reason", "status_code", "status_date", "currency", "line_reason",
                 "refunded_gross", "refunded_net", "refunded_vat", "total_gross", "payment_count", "message_id",
                 "source_file", "source_line", "delivery_count")
REJECT_COLUMNS = ("source", "record_key", "reason", "payload", "order_reference", "order_line_reference",
                  "rma_reference", "return_reference", "credit_note_number")


def make_world(tmp_path: Path, ledger: Path | None = None) -> dict:
    ledger = ledger or tmp_path / "ledger"
    ledger.mkdir(parents=True, exist_ok=True)
    warehouse = tmp_path / "warehouse.duckdb"
    return {"ledger": ledger, "warehouse": warehouse,
            "resources": {"refund_ledger": RefundLedgerResource(path=str(ledger)),
                          "warehouse": WarehouseResource(path=str(warehouse))}}


@pytest.fixture()
def world(tmp_path):
    w = make_world(tmp_path)
    write_ledger(w["ledger"])
    return w


def run(world, d: date = D2) -> dict:
    """Materialize the ledger for d, build core.refund_lines of d; the asset's metadata as values."""
    result = dg.materialize([refund_lines], partition_key=d.isoformat(), resources=world["resources"])
    assert result.success
    con = connect(world["warehouse"])
    try:
        # this world has no shop: record that date's (empty) storefront read, as its run would
        if not con.execute("SELECT 1 FROM state.storefront_fetches WHERE business_date = $d", {"d": d}).fetchall():
            con.execute("INSERT INTO state.storefront_fetches VALUES ($d, now()::TIMESTAMP)", {"d": d})
        rebuild(con, "core", "refund_lines", d, load_config())
    finally:
        con.close()
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    return {k: v.value for k, v in meta.items()}




def stored(world) -> list[tuple]:
    return query(world, f"SELECT {', '.join(LINES_COLUMNS)} FROM raw.refund_lines ORDER BY ALL")


def core(world, d: date = D2) -> list[tuple]:
    return query(world, "SELECT * FROM core.refund_lines WHERE business_date = $d ORDER BY ALL", {"d": d})


def day_rejects(world, d: date = D2) -> list[tuple]:
    """The date's ledger rejects, in stored order."""
    return query(world, f"SELECT {', '.join(REJECT_COLUMNS)} FROM recon.rejects "
                        "WHERE source = 'refund_ledger' AND business_date = $d", {"d": d})


def assert_as_full_read(world, d: date = D2) -> None:
    """raw.refund_lines and the date's rejects are what reading the whole archive now gives."""
    full = RefundLedgerResource(path=str(world["ledger"])).read_ledger()
    expected = sorted(full.refund_lines.select(LINES_COLUMNS).iter_rows())
    assert stored(world) == expected
    assert day_rejects(world, d) == list(full.rejects.select(REJECT_COLUMNS).iter_rows())


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_second_run_without_change_reads_no_file(world):
    first = run(world)
    assert (first["files_read"], first["files_new"], first["files_unchanged"]) == (2, 2, 0)
    assert first["versions_added"] == 8
    before_core, before_raw, before_rejects = core(world), stored(world), day_rejects(world)
    assert before_core
    second = run(world)
    assert (second["files_read"], second["files_unchanged"], second["files_touched"], second["files_removed"]) \
        == (0, 2, 0, 0)
    assert second["versions_added"] == second["versions_removed"] == second["lines_read"] == 0
    assert second["dagster/row_count"] == first["dagster/row_count"] == len(before_raw)
    assert (second["versions"], second["credit_notes"], second["rejects"]) == \
        (first["versions"], first["credit_notes"], first["rejects"]) == (7, 6, 7)
    assert core(world) == before_core and stored(world) == before_raw and day_rejects(world) == before_rejects
    assert_as_full_read(world)


def test_appending_to_a_file_rereads_only_that_file(world):
    run(world)
    with open(world["ledger"] / FILE2, "a") as handle:
        handle.write(CN1 + "\n" + refund("CN-10", "1002", [line("3", payment("1.00", "1.00", "0.00"))]) + "\n")
    meta = run(world)
    assert (meta["files_read"], meta["files_new"], meta["files_unchanged"]) == (1, 0, 1)
    assert meta["lines_read"] == len(FILE2_LINES) + 2
    assert meta["versions_added"] == 1 and meta["versions_removed"] == 0
    read_on = dict(query(world, "SELECT path, read_on FROM state.refund_ledger_files"))
    assert read_on == {FILE1: D2, FILE2: D2}
    (cn1,) = query(world, "SELECT delivery_count, source_file, source_line FROM raw.refund_lines "
                          "WHERE credit_note_number = 'CN-1'")
    assert cn1 == (4, FILE1, 1)
    assert_as_full_read(world)


def test_a_new_file_is_read_alone(world):
    run(world)
    write(world["ledger"] / "2026-04-01.jsonl", [refund("CN-10", "1002", [line("3", payment("1.00", "1.00", "0.00"))])])
    meta = run(world)
    assert (meta["files_read"], meta["files_new"], meta["files_unchanged"]) == (1, 1, 2)
    assert meta["versions_added"] == 1 and meta["credit_notes_resolved"] == 1
    assert_as_full_read(world)


def test_deleting_a_file_removes_its_versions_and_rejects(world):
    run(world)
    (world["ledger"] / FILE1).unlink()
    meta = run(world)
    assert (meta["files_read"], meta["files_removed"], meta["files_unchanged"]) == (0, 1, 1)
    # CN-2 and the RELEASED CN-5 came only from file 1; CN-1 stays, delivered once in file 2
    assert meta["versions_removed"] == 2
    notes = {r[0] for r in query(world, "SELECT credit_note_number FROM raw.refund_lines")}
    assert "CN-2" not in notes and "CN-1" in notes
    assert query(world, "SELECT status_code FROM raw.refund_lines WHERE credit_note_number = 'CN-5'") == [("PENDING",)]
    assert query(world, "SELECT delivery_count, source_file, source_line FROM raw.refund_lines "
                        "WHERE credit_note_number = 'CN-1'") == [(1, FILE2, 1)]
    assert not [r for r in day_rejects(world) if r[1].startswith(FILE1)]
    assert query(world, "SELECT count(*) FROM state.refund_versions WHERE credit_note_number = 'CN-2'") == [(0,)]
    assert query(world, "SELECT path FROM state.refund_ledger_files") == [(FILE2,)]
    assert_as_full_read(world)


def test_touching_a_file_reparses_nothing(world, monkeypatch):
    run(world)
    before = stored(world)
    path = world["ledger"] / FILE1
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))

    def no_parse(self, name, path):
        raise AssertionError(f"{name} parsed although its content did not change")

    monkeypatch.setattr(RefundLedgerResource, "read_file", no_parse)
    meta = run(world)
    assert (meta["files_read"], meta["files_touched"], meta["files_unchanged"]) == (0, 1, 1)
    assert query(world, "SELECT mtime_ns FROM state.refund_ledger_files WHERE path = $p",
                 {"p": FILE1}) == [(st.st_mtime_ns + 5_000_000_000,)]
    assert stored(world) == before
    again = run(world)  # the manifest took the new mtime: unchanged now, not even hashed
    assert (again["files_touched"], again["files_unchanged"]) == (0, 2)


def test_a_redelivery_read_on_a_later_day_counts_with_the_first_delivery(tmp_path):
    w = make_world(tmp_path)
    note = refund("CN-20", "1001", [line("2", payment("10.00", "10.00", "0.00"))], msg_id="first")
    write(w["ledger"] / "b.jsonl", [note])
    run(w, D1)
    write(w["ledger"] / "c.jsonl", [refund("CN-20", "1001", [line("2", payment("10.00", "10.00", "0.00"))],
                                           msg_id="again")])
    meta = run(w, D2)
    assert meta["files_read"] == 1 and meta["versions_added"] == 0 and meta["duplicates_collapsed"] == 1
    assert query(w, "SELECT delivery_count, source_file, source_line, message_id FROM raw.refund_lines") == \
        [(2, "b.jsonl", 1, "first")]
    assert_as_full_read(w)
    # a file that sorts first holds the first delivery, whichever day it is read
    write(w["ledger"] / "a.jsonl", ["", refund("CN-20", "1001", [line("2", payment("10.00", "10.00", "0.00"))],
                                                msg_id="earliest")])
    run(w, D2)
    assert query(w, "SELECT delivery_count, source_file, source_line, message_id FROM raw.refund_lines") == \
        [(3, "a.jsonl", 2, "earliest")]
    assert_as_full_read(w)
    assert core(w, D2) and core(w, D2)[0][-1] == query(w, "SELECT version_key FROM raw.refund_lines")[0][0]


def test_a_conflicting_redelivery_read_on_a_later_day_is_rejected(tmp_path):
    w = make_world(tmp_path)
    write(w["ledger"] / "b.jsonl", [refund("CN-30", "1001", [line("2", payment("10.00", "10.00", "0.00"))]),
                                    "{not json"])
    run(w, D1)
    write(w["ledger"] / "c.jsonl", [refund("CN-30", "1001", [line("2", payment("99.00", "99.00", "0.00"))])])
    meta = run(w, D2)
    assert meta["files_read"] == 1 and meta["rejects"] == 2
    keys = [r[1] for r in day_rejects(w, D2)]
    assert keys == ["b.jsonl:2", "c.jsonl:1:CN-30"]  # the unchanged file's reject is listed too
    reason = day_rejects(w, D2)[1][2]
    assert reason.startswith("conflicting redelivery: credit note CN-30 was first delivered at b.jsonl:1 ")
    assert query(w, "SELECT refunded_gross FROM raw.refund_lines")[0][0] == 10
    assert_as_full_read(w, D2)
    # the earlier date's partition stays as its run wrote it
    assert [r[1] for r in day_rejects(w, D1)] == ["b.jsonl:2"]
    # a new file sorting first: its delivery wins, the one kept so far becomes the conflict
    write(w["ledger"] / "a.jsonl", [refund("CN-30", "1001", [line("2", payment("5.00", "5.00", "0.00"))])])
    run(w, D2)
    assert query(w, "SELECT refunded_gross, source_file FROM raw.refund_lines")[0] == (5, "a.jsonl")
    assert [r[1] for r in day_rejects(w, D2)] == ["b.jsonl:1:CN-30", "b.jsonl:2", "c.jsonl:1:CN-30"]
    assert_as_full_read(w, D2)
    # and when it goes again, the first of the others is back in force
    (w["ledger"] / "a.jsonl").unlink()
    run(w, D2)
    assert query(w, "SELECT refunded_gross, source_file FROM raw.refund_lines")[0] == (10, "b.jsonl")
    assert_as_full_read(w, D2)


def test_a_changed_file_drops_what_it_no_longer_holds(world):
    run(world)
    write(world["ledger"] / FILE2, [CN1, CN5_PENDING])  # rewritten: CN-4, CN-6, CN-9 and the bad lines gone
    meta = run(world)
    assert meta["files_read"] == 1 and meta["versions_removed"] == 4  # CN-4, CN-9, both CN-6 versions
    assert_as_full_read(world)


def test_gzip_and_subfolders_incrementally(tmp_path):
    import gzip
    w = make_world(tmp_path)
    sub = w["ledger"] / "2026" / "03"
    sub.mkdir(parents=True)
    (sub / "x.jsonl.gz").write_bytes(gzip.compress((CN1 + "\n").encode()))
    run(w)
    (sub / "x.jsonl.gz").write_bytes(gzip.compress((CN1 + "\n" + CN5_PENDING + "\n").encode()))
    meta = run(w)
    assert meta["files_read"] == 1 and meta["versions_added"] == 1
    assert_as_full_read(w)


def test_dates_in_any_order_and_reruns_give_the_same_tables(tmp_path):
    def tables(w):
        return ([core(w, d) for d in (D1, D2)], [day_rejects(w, d) for d in (D1, D2)], stored(w))

    in_order = make_world(tmp_path / "in_order", write_ledger(tmp_path / "ledger"))
    for d in (D1, D2):
        run(in_order, d)
    out_of_order = make_world(tmp_path / "out_of_order", tmp_path / "ledger")
    for d in (D2, D1, D2, D1):
        run(out_of_order, d)
    assert tables(in_order) == tables(out_of_order)
    assert tables(in_order)[0][0] != tables(in_order)[0][1]  # T differs: CN-5 is RELEASED only at D2's T


def test_the_tables_hold_one_copy_whatever_the_number_of_dates(world):
    run(world, D1)
    counts = {t: query(world, f"SELECT count(*) FROM {t}")[0][0]
              for t in ("raw.refund_lines", "state.refund_versions", "state.refund_ledger_deliveries",
                        "state.refund_ledger_files")}
    run(world, D2)
    assert {t: query(world, f"SELECT count(*) FROM {t}")[0][0] for t in counts} == counts
