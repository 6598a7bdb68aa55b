"""The workbook round-trip on the demo world: two business dates run through Dagster, the
exported ``discrepancies.xlsx`` filled in with openpyxl as a person would, ``recon review import``
applies what it can and reports the rest; ``recon review set`` / ``list`` on the same warehouse;
the workbook opens in LibreOffice and its Summary equals ``recon.discrepancies``."""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from conftest import WORLD_END, query, world_runs
from pipelines.cli import main
from pipelines.workbook import EXPORTED_SHEET, OPEN_SHEET, RESOLVED_SHEET, SUMMARY_SHEET

D0, D = WORLD_END - timedelta(days=1), WORLD_END
OUTCOMES: list = []
# new: open on D and not detected on D0 (first seen, or detected again); persisting: on both
MOVEMENT_SQL = """
    SELECT count(*) FILTER (WHERE status = 'OPEN' AND discrepancy_id NOT IN (SELECT discrepancy_id
               FROM recon.discrepancy_detections WHERE business_date = $d0)),
           count(*) FILTER (WHERE status = 'OPEN' AND discrepancy_id IN (SELECT discrepancy_id
               FROM recon.discrepancy_detections WHERE business_date = $d0)),
           count(*) FILTER (WHERE resolved_on = $d) FROM recon.discrepancies"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory, demo_world, manifest):
    """Runs D0 and D; yields (settings, path of D's workbook) with the run's environment set."""
    with world_runs(tmp_path_factory.mktemp("home"), demo_world, manifest, [D0, D]) as (settings, outcomes):
        OUTCOMES[:] = outcomes  # the runs' summaries, for the metadata test
        yield settings, settings.export_dir / D.isoformat() / "discrepancies.xlsx"


def columns(sheet) -> dict[str, int]:
    return {c.value: c.column for c in sheet[1]}


def open_ids(settings) -> list[str]:
    return [r[0] for r in query(settings, "SELECT discrepancy_id FROM recon.discrepancies WHERE status = 'OPEN'")]


def test_the_workbook_is_laid_out_for_review(exported):
    settings, path = exported
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == [SUMMARY_SHEET, OPEN_SHEET, RESOLVED_SHEET, EXPORTED_SHEET]
    assert book[EXPORTED_SHEET].sheet_state == "veryHidden"
    sheet = book[OPEN_SHEET]
    col = columns(sheet)
    assert sheet.freeze_panes == "B2" and sheet.auto_filter.ref.startswith("A1:")
    assert sheet.protection.sheet and sheet.protection.autoFilter is False  # False: filtering allowed
    ids = [sheet.cell(r, col["Discrepancy ID"]).value for r in range(2, sheet.max_row + 1)]
    assert sorted(ids) == sorted(open_ids(settings))
    row = 2
    for header in ("Review state", "Assignee", "Note"):
        assert sheet.cell(row, col[header]).protection.locked is False, header
    for header in ("Discrepancy ID", "Rule", "Amount at risk", "Details"):
        assert sheet.cell(row, col[header]).protection.locked is True, header
    currency = sheet.cell(row, col["Currency"]).value
    assert currency in sheet.cell(row, col["Amount at risk"]).number_format
    amount = query(settings, "SELECT amount_at_risk FROM recon.discrepancies WHERE discrepancy_id = $i",
                   {"i": ids[0]})[0][0]
    assert Decimal(str(sheet.cell(row, col["Amount at risk"]).value)).quantize(Decimal("0.01")) == amount
    validation = [dv for dv in sheet.data_validations.dataValidation if dv.type == "list"]
    assert validation and "ACCEPTED" in validation[0].formula1
    resolved = book[RESOLVED_SHEET]
    expected_resolved = query(settings, "SELECT discrepancy_id FROM recon.discrepancies WHERE resolved_on = $d",
                              {"d": D})
    assert sorted(resolved.cell(r, 1).value for r in range(2, resolved.max_row + 1)) == \
        sorted(r[0] for r in expected_resolved)


def test_filled_in_workbook_imports_what_is_valid_and_reports_the_rest(exported, tmp_path, capsys):
    settings, path = exported
    filled = tmp_path / "filled.xlsx"
    shutil.copy(path, filled)
    book = openpyxl.load_workbook(filled)
    sheet = book[OPEN_SHEET]
    col = columns(sheet)
    ids = {r: sheet.cell(r, col["Discrepancy ID"]).value for r in range(2, 8)}
    sheet.cell(2, col["Review state"]).value = "INVESTIGATING"
    sheet.cell(2, col["Assignee"]).value = "alice"
    sheet.cell(2, col["Note"]).value = "asked the courier"
    sheet.cell(3, col["Review state"]).value = "accepted"          # any case
    sheet.cell(4, col["Review state"]).value = "MAYBE"             # unknown state: row rejected
    sheet.cell(5, col["Review state"]).value = "RECOVERED"
    sheet.cell(5, col["Amount at risk"]).value = 0                 # a protected cell: ignored, reported
    sheet.cell(6, col["Note"]).value = "=HYPERLINK(\"http://x\")"  # text, whatever it looks like
    last = sheet.max_row + 1
    sheet.cell(last, col["Discrepancy ID"]).value = "D-0000000000000000"  # unknown id: rejected
    sheet.cell(last, col["Review state"]).value = "ACCEPTED"
    book.save(filled)
    sha = hashlib.sha256(filled.read_bytes()).hexdigest()

    assert main(["review", "import", str(filled), "--actor", "finance-bot"]) == 1
    out, err = capsys.readouterr()
    assert "row 4: unknown review state 'MAYBE'" in err
    assert f"row {last}: unknown discrepancy id 'D-0000000000000000'" in err
    assert "row 5: protected column 'Amount at risk' changed" in err
    events = query(settings, 'SELECT discrepancy_id, actor, field, old, new, note, source FROM recon.review_events '
                             'ORDER BY event_id')
    source = f"filled.xlsx sha256:{sha}"
    assert events == [
        (ids[2], "finance-bot", "review_state", "NEW", "INVESTIGATING", "asked the courier", source),
        (ids[2], "finance-bot", "assignee", None, "alice", "asked the courier", source),
        (ids[3], "finance-bot", "review_state", "NEW", "ACCEPTED", None, source),
        (ids[5], "finance-bot", "review_state", "NEW", "RECOVERED", None, source),
        (ids[6], "finance-bot", "note", None, "=HYPERLINK(\"http://x\")", "=HYPERLINK(\"http://x\")", source),
    ]
    state = dict(query(settings, "SELECT discrepancy_id, review_state FROM recon.discrepancies"))
    assert (state[ids[2]], state[ids[3]], state[ids[4]], state[ids[5]]) == \
        ("INVESTIGATING", "ACCEPTED", "NEW", "RECOVERED")
    amount_before = query(settings, "SELECT amount_at_risk FROM recon.discrepancies WHERE discrepancy_id = $i",
                          {"i": ids[5]})[0][0]
    assert amount_before != 0

    # twice: nothing changes
    assert main(["review", "import", str(filled), "--actor", "finance-bot"]) == 1
    assert "0 change(s) applied" in capsys.readouterr().out
    assert len(query(settings, "SELECT * FROM recon.review_events")) == len(events)

    # a decision made since the export is not overridden by a cell left as it was exported
    assert main(["review", "set", ids[7], "--state", "written off", "--note", "below threshold"]) == 0
    capsys.readouterr()
    assert main(["review", "import", str(filled)]) == 1
    assert dict(query(settings, "SELECT discrepancy_id, review_state FROM recon.discrepancies"))[ids[7]] == \
        "WRITTEN_OFF"

    # the queue: to do, then by state and assignee
    assert main(["review", "list"]) == 0
    listed = capsys.readouterr().out
    assert ids[2] in listed and ids[3] not in listed and "1 ACCEPTED" in listed
    assert main(["review", "list", "--assignee", "alice"]) == 0
    listed = capsys.readouterr().out
    assert ids[2] in listed and "1 open discrepancy to review" in listed
    assert main(["review", "list", "--state", "accepted"]) == 0
    assert ids[3] in capsys.readouterr().out


def test_review_set_rejects_unknown_ids_and_states_with_one_line_and_applies_nothing(exported, capsys):
    settings, _ = exported
    before = query(settings, "SELECT count(*) FROM recon.review_events")[0][0]
    known = open_ids(settings)[-1]
    assert main(["review", "set", known, "D-ffffffffffffffff", "--state", "ACCEPTED"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "recon: unknown discrepancy id D-ffffffffffffffff"
    assert main(["review", "set", known, "--state", "DONE"]) == 2
    assert "unknown review state 'DONE'" in capsys.readouterr().err
    assert query(settings, "SELECT count(*) FROM recon.review_events")[0][0] == before
    assert main(["review", "set", known, "--state", "INVESTIGATING", "--assignee", "bo"]) == 0
    assert query(settings, "SELECT actor, source FROM recon.review_events ORDER BY event_id DESC LIMIT 1")[0] == \
        (os.environ.get("USER") or __import__("getpass").getuser(), "cli")


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        reason = "LibreOffice (soffice) is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: .ci/run installs it")
        pytest.skip(reason)
    return found


def test_the_workbook_opens_in_libreoffice_and_its_summary_equals_the_register(exported, tmp_path):
    settings, path = exported
    exe = soffice()
    profile = f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}"
    env = {**os.environ, "HOME": str(tmp_path)}
    for target in ("pdf", "csv"):
        done = subprocess.run([exe, profile, "--headless", "--norestore", "--convert-to", target, "--outdir",
                               str(tmp_path), str(path)], capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr
        out = tmp_path / f"discrepancies.{target}"
        assert out.exists() and out.stat().st_size > 0, (done.stdout, done.stderr)
    assert (tmp_path / "discrepancies.pdf").read_bytes().startswith(b"%PDF")
    rows = list(csv.reader((tmp_path / "discrepancies.csv").open(encoding="utf-8", errors="replace")))
    # the first sheet (Summary) as LibreOffice computed it: its per-rule table, then the blocks
    by_label = {r[0]: r for r in rows if r and r[0]}
    register = dict(query(settings, "SELECT rule, count(*) FROM recon.discrepancies WHERE status = 'OPEN' "
                                    "GROUP BY rule"))
    from pipelines.config import RULES
    for rule in RULES:
        assert int(by_label[rule][2]) == register.get(rule, 0), rule
    assert int(by_label["Total"][2]) == sum(register.values())
    sheet = openpyxl.load_workbook(path, read_only=True)[OPEN_SHEET]
    rows_ = list(sheet.iter_rows(values_only=True))
    store_col = rows_[0].index("Amount at risk (store currency)")
    open_total = sum(Decimal(repr(r[store_col])).quantize(Decimal("0.01")) for r in rows_[1:])
    assert Decimal(by_label["Total"][3]) == open_total
    # the review-state block counts the open sheet's states as exported
    state_col = rows_[0].index("Review state")
    from collections import Counter
    exported_states = Counter(r[state_col] for r in rows_[1:])
    from pipelines.review import STATES
    assert {s_: int(by_label[s_][1]) for s_ in STATES} == {s_: exported_states.get(s_, 0) for s_ in STATES}
    (new, persisting, resolved), = query(settings, MOVEMENT_SQL, {"d": D, "d0": D0})
    assert (int(by_label["new today"][1]), int(by_label["persisting"][1]), int(by_label["resolved today"][1])) == \
        (new, persisting, resolved)
    assert persisting > 0 and new + resolved > 0  # the date moved (in the fixture world: 0 new, 90, 1 resolved)
    assert int(by_label["0-1 days"][1]) == new + persisting  # two dates: everything is at most a day old
    assert int(by_label["NEW"][1]) + sum(int(by_label[s][1]) for s in
                                         ("INVESTIGATING", "ACCEPTED", "RECOVERED", "WRITTEN_OFF",
                                          "FALSE_POSITIVE")) == sum(register.values())


# Per rule, the evidence its sentence must name: (kind, key) with key a details field or a
# register column. money: "240.00 EUR" in the row's currency; units: "2 units"; days: "14 days";
# id: every comma-separated id; date: YYYY-MM-DD; text: the value as it is; count: the number.
EVIDENCE = {
    "DUPLICATE_REFUND": [("money", "refunded_amount"), ("money", "allowed_amount"), ("count", "credit_note_count"),
                         ("units", "requested_units"), ("id", "order_reference"), ("id", "refund_reference"),
                         ("money", "amount_at_risk")],
    "OVER_REFUND": [("money", "refunded_amount"), ("money", "allowed_amount"), ("money", "unit_gross"),
                    ("units", "requested_units"), ("id", "order_reference"), ("id", "refund_reference"),
                    ("money", "amount_at_risk")],
    "REFUND_WITHOUT_RECEIPT": [("units", "refunded_units"), ("units", "received_units"), ("money", "refunded_amount"),
                               ("id", "order_reference"), ("id", "refund_reference"), ("money", "amount_at_risk")],
    "RECEIVED_NOT_REFUNDED": [("units", "accepted_units"), ("units", "refunded_units"), ("date", "latest_completed_at"),
                              ("days", "refund_sla_days"), ("id", "order_reference"), ("id", "return_reference"),
                              ("money", "amount_at_risk")],
    "REFUND_FOR_DAMAGED_GOODS": [("units", "refunded_units"), ("units", "received_units"), ("count", "damaged_units"),
                                 ("id", "order_reference"), ("money", "amount_at_risk")],
    "QUANTITY_MISMATCH": [("units", "requested_units"), ("units", "received_units"), ("id", "order_reference"),
                          ("id", "return_reference"), ("money", "amount_at_risk")],
    "RMA_NOT_RECEIVED": [("date", "authorized_since"), ("days", "transit_days"), ("units", "quantity"),
                         ("id", "rma_reference"), ("money", "amount_at_risk")],
    "STATUS_MISMATCH": [("id", "rma_reference"), ("text", "rma_status_name")],
    "ORPHAN_WMS_RETURN": [("id", "return_reference"), ("units", "units"), ("id", "order_reference"),
                          ("money", "amount_at_risk")],
    "REFERENCE_MISMATCH": [("id", "return_reference"), ("id", "rma_reference"), ("id", "wms_order_reference"),
                           ("id", "rma_order_references"), ("id", "tracking_id")],
    "RESTOCK_MISMATCH": [("units", "undamaged_units"), ("units", "restocked_units"), ("id", "return_reference"),
                         ("days", "restock_lag_days"), ("money", "amount_at_risk")],
    "ORPHAN_REFUND": [("id", "refund_reference"), ("money", "amount"), ("id", "order_reference")],
    "UNSYNCED_STOCK_ADJUSTMENT": [("units", "wms_available_stock"), ("count", "storefront_quantity"),
                                  ("units", "restocked_units"), ("id", "sku"), ("money", "amount_at_risk")],
    "REFUND_CURRENCY_MISMATCH": [("money", "amount"), ("text", "order_currency"), ("id", "refund_reference")],
    "CREDIT_NOTE_NOT_PAID": [("money", "note_amount"), ("date", "released_at"), ("id", "refund_reference"),
                             ("id", "order_reference"), ("money", "amount_at_risk")],
    "PAYMENT_WITHOUT_CREDIT_NOTE": [("id", "refund_reference"), ("money", "amount_at_risk"),
                                    ("id", "metadata_order_id"), ("id", "metadata_credit_note_number")],
    "PAYMENT_AMOUNT_MISMATCH": [("money", "note_amount"), ("money", "paid"), ("count", "succeeded_refunds"),
                                ("id", "refund_reference"), ("id", "order_reference"), ("money", "amount_at_risk")],
}


def _expected(kind: str, value, currency) -> str:
    import re
    from decimal import ROUND_HALF_UP
    if kind == "money":
        text = str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
        return re.escape(f"{text} {currency}" if currency else text)
    if kind == "units":
        return rf"(?<![\d.]){int(value)} units?\b"
    if kind == "days":
        return rf"(?<![\d.]){int(value)} days?\b"
    if kind == "count":
        return rf"(?<![\d.]){int(value)}(?![\d.])"
    if kind == "date":
        return re.escape(str(value)[:10])
    return re.escape(str(value))


def test_every_discrepancy_explains_itself_with_the_numbers_its_rule_compared(exported):
    import json
    import re

    from pipelines.config import RULES

    settings, path = exported
    rows = query(settings, "SELECT rule, explanation, CAST(details AS VARCHAR), order_reference, rma_reference, "
                           "return_reference, refund_reference, sku, tracking_id, amount_at_risk, currency "
                           "FROM recon.discrepancies")
    assert {r[0] for r in rows} == set(RULES), "the demo world fires every rule"
    assert set(EVIDENCE) == set(RULES)
    for rule, explanation, details, *cols in rows:
        assert explanation and explanation.endswith(".") and "\n" not in explanation, (rule, explanation)
        values = {**json.loads(details), **dict(zip(("order_reference", "rma_reference", "return_reference",
                                                     "refund_reference", "sku", "tracking_id", "amount_at_risk"), cols))}
        currency = values.get("refund_currency") or cols[-1]
        for kind, key in EVIDENCE[rule]:
            value = values.get(key)
            if value is None:
                continue  # e.g. no WMS return matched: the sentence says "none"
            parts = [p.strip() for p in str(value).split(",")] if kind == "id" else [value]
            if kind == "money" and not currency and rule in ("ORPHAN_WMS_RETURN", "RESTOCK_MISMATCH"):
                # no order line gives the goods' value: said, not a made-up 0.00
                assert "unknown value" in explanation or "no order line gives their value" in explanation, \
                    (rule, explanation)
                continue
            for part in parts:
                assert re.search(_expected(kind, part, currency), explanation), (rule, key, part, explanation)
    # the sentence is in the CSV and the workbook too
    import polars as pl
    frame = pl.read_csv(path.with_suffix(".csv"), infer_schema=False)
    assert frame["Explanation"].null_count() == 0
    sheet = openpyxl.load_workbook(path, read_only=True)[OPEN_SHEET]
    header = [c.value for c in next(sheet.iter_rows(max_row=1))]
    assert "Explanation" in header


def test_the_chart_draws_the_movement_of_each_date(exported):
    from pipelines.export import movement_trend
    from pipelines.resources.warehouse import connect

    settings, _ = exported
    con = connect(settings.warehouse, read_only=True)
    try:
        moves = {r[0]: r[1:] for r in movement_trend(con, D).rows()}
    finally:
        con.close()
    first = query(settings, "SELECT count(*) FROM recon.discrepancy_detections WHERE business_date = $d", {"d": D0})[0][0]
    (new, resolved), = query(settings, "SELECT count(*) FILTER (WHERE first_detected_on = $d), "
                                       "count(*) FILTER (WHERE resolved_on = $d) FROM recon.discrepancies", {"d": D})
    assert moves == {D0: (first, 0), D: (new, resolved)}


def test_the_run_summary_carries_movement_ageing_and_the_workbook(exported):
    settings, path = exported
    meta = OUTCOMES[-1].metadata["exports/finance_export"]
    assert meta["workbook"] == str(path)
    figures = meta["ageing_and_movement"]
    (new, persisting, resolved), = query(settings, MOVEMENT_SQL, {"d": D, "d0": D0})
    open_n = new + persisting
    assert {k: v["count"] for k, v in figures["movement"].items()} == \
        {"new today": new, "persisting": persisting, "resolved today": resolved}
    assert sum(v["count"] for v in figures["ageing"].values()) == open_n
    per_rule = dict(query(settings, "SELECT rule, count(*) FROM recon.discrepancies WHERE status = 'OPEN' GROUP BY 1"))
    assert {r: v["open"] for r, v in figures["per_rule"].items() if v["open"]} == per_rule
    assert meta["movement_text"].startswith(f"Movement: new today {new} ")
    expected_high = {r[0] for r in query(
        settings, "SELECT discrepancy_id FROM recon.discrepancies WHERE severity = 'HIGH' AND status = 'OPEN' "
                  "AND discrepancy_id NOT IN (SELECT discrepancy_id FROM recon.discrepancy_detections "
                  "WHERE business_date = $d0)", {"d0": D0})}
    assert {i["id"] for i in meta["new_high"]} == expected_high
    assert len(meta["new_high"]) == len(expected_high)
    for rule, v in figures["per_rule"].items():
        assert v["new"] + v["persisting"] == v["open"] == sum(v["ageing"].values()), rule


def test_decisions_survive_real_reruns_and_a_backfill_and_reach_the_next_workbook(exported, capsys):
    """Through the whole pipeline: a decision, then the same date again and an earlier date."""
    from pipelines.runner import run_business_date

    settings, path = exported
    target = open_ids(settings)[0]
    assert main(["review", "set", target, "--state", "FALSE_POSITIVE", "--assignee", "carla",
                 "--note", "courier already credited"]) == 0
    capsys.readouterr()
    before = query(settings, "SELECT discrepancy_id, review_state, assignee, last_note FROM recon.discrepancies "
                             "ORDER BY 1")
    events = query(settings, "SELECT * FROM recon.review_events ORDER BY event_id")
    for d in (D, D0 - timedelta(days=1)):   # a rerun, then a backfill of an earlier date
        assert run_business_date(d, settings=settings).success
    after = query(settings, "SELECT discrepancy_id, review_state, assignee, last_note FROM recon.discrepancies "
                            "ORDER BY 1")
    known = {r[0] for r in before}
    assert [r for r in after if r[0] in known] == before  # (the backfill may add ids only it detected)
    assert ("FALSE_POSITIVE", "carla") in {r[1:3] for r in after}
    assert query(settings, "SELECT * FROM recon.review_events ORDER BY event_id") == events
    sheet = openpyxl.load_workbook(path, read_only=True)[OPEN_SHEET]
    rows = list(sheet.iter_rows(values_only=True))
    col = {h: i for i, h in enumerate(rows[0])}
    row = next(r for r in rows[1:] if r[col["Discrepancy ID"]] == target)
    assert (row[col["Review state"]], row[col["Assignee"]], row[col["Note"]]) == \
        ("FALSE_POSITIVE", "carla", "courier already credited")


def test_text_that_looks_like_a_formula_stays_text_in_every_sheet(exported, tmp_path):
    import polars as pl

    from pipelines.export import open_on_date, resolved_on_date
    from pipelines.movement import figures
    from pipelines.resources.warehouse import connect
    from pipelines.review import STATES
    from pipelines.workbook import write_workbook

    settings, _ = exported
    con = connect(settings.warehouse, read_only=True)
    try:
        typed, resolved = open_on_date(con, D), resolved_on_date(con, D)
    finally:
        con.close()
    hostile = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd"]
    typed = typed.with_columns(pl.Series("sku", (hostile * typed.height)[:typed.height]),
                               pl.lit("=cmd|' /C calc'!A0").alias("last_note"))
    out = tmp_path / "w.xlsx"
    write_workbook(out, D, "EUR", typed, resolved, figures(typed, resolved, [], {}, STATES), None, STATES)
    sheet = openpyxl.load_workbook(out)[OPEN_SHEET]
    col = columns(sheet)
    for r in range(2, 2 + len(hostile)):
        for header in ("SKU", "Note"):
            cell = sheet.cell(r, col[header])
            assert cell.data_type == "s" and cell.quotePrefix, (header, cell.value)
    assert sheet.cell(2, col["SKU"]).value == hostile[0]
    hidden = openpyxl.load_workbook(out)[EXPORTED_SHEET]
    assert all(hidden.cell(r, col["SKU"]).data_type == "s" and hidden.cell(r, col["SKU"]).quotePrefix
               for r in range(2, 2 + len(hostile)))
