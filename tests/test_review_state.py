"""Review decisions (pipelines/review.py, sql/recon/merge_into_discrepancy_reviews.sql) survive every
run: reruns, the next date, backfills, a discrepancy resolved and detected again; the state goes
back to NEW only when the amount changed. Detection histories are hand-built as in test_lifecycle."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from pipelines.review import Change, ReviewError, UNSET, apply_changes, queue
from pipelines.resources.warehouse import connect
from test_lifecycle import evaluate

D1, D2, D3, D4, D5 = (date(2026, 3, d) for d in (1, 2, 3, 4, 5))


@pytest.fixture
def con(tmp_path):
    c = connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def review(con) -> dict[str, tuple]:
    rows = con.execute("SELECT discrepancy_id, status, review_state, assignee, last_note FROM recon.discrepancies "
                       "ORDER BY 1").fetchall()
    return {r[0]: r[1:] for r in rows}


def events(con) -> list[tuple]:
    return con.execute("SELECT discrepancy_id, actor, field, old, new, note, source, amount_at_risk "
                       "FROM recon.review_events ORDER BY event_id").fetchall()


def decide(con, i: str, state=UNSET, assignee=UNSET, note=UNSET, actor="ana"):
    return apply_changes(con, [Change(i, review_state=state, assignee=assignee, note=note)], actor=actor, source="cli")


def test_a_decision_survives_reruns_the_next_date_and_a_backfill(con):
    evaluate(con, D2, ["a", "b"])
    assert review(con)["a"] == ("OPEN", "NEW", None, None)
    assert decide(con, "a", "INVESTIGATING", "bo", "asked the warehouse") == [
        ("a", "review_state", "NEW", "INVESTIGATING"), ("a", "assignee", None, "bo")]
    after = review(con)
    assert after["a"] == ("OPEN", "INVESTIGATING", "bo", "asked the warehouse")
    evaluate(con, D2, ["a", "b"])            # rerun of the same date
    evaluate(con, D3, ["a", "b"])            # the next date
    evaluate(con, D1, ["a"])                 # a backfill of an earlier date
    assert review(con) == after
    assert events(con) == [("a", "ana", "review_state", "NEW", "INVESTIGATING", "asked the warehouse", "cli", 10),
                           ("a", "ana", "assignee", None, "bo", "asked the warehouse", "cli", 10)]


def test_resolved_then_detected_again_keeps_its_history_and_state_unless_the_amount_changed(con):
    evaluate(con, D1, ["a", "b"])
    decide(con, "a", "ACCEPTED", note="tolerated: courier claim")
    decide(con, "b", "FALSE_POSITIVE")
    evaluate(con, D2, [])                    # both resolved
    assert review(con) == {"a": ("RESOLVED", "ACCEPTED", None, "tolerated: courier claim"),
                           "b": ("RESOLVED", "FALSE_POSITIVE", None, None)}
    evaluate(con, D3, ["a"])                 # same grain, same amount: same id, decision kept
    assert review(con)["a"] == ("OPEN", "ACCEPTED", None, "tolerated: courier claim")
    evaluate(con, D4, ["a", "b"], amount=12.5)  # detected again with another amount: a new look
    assert review(con) == {"a": ("OPEN", "NEW", None, "tolerated: courier claim"),
                           "b": ("OPEN", "NEW", None, None)}
    assert len(events(con)) == 2, "the history is kept; the return to NEW is derived, not a decision"
    # accepted again at the new amount: holds while the amount stays
    decide(con, "a", "ACCEPTED")
    evaluate(con, D5, ["a"], amount=12.5)
    assert review(con)["a"][1] == "ACCEPTED"
    assert events(con)[-1][2:5] == ("review_state", "NEW", "ACCEPTED") and events(con)[-1][7] == 12.5


def test_an_accepted_break_that_grows_goes_back_to_new_and_into_the_to_do_list(con):
    evaluate(con, D1, ["a", "b"])
    decide(con, "a", "ACCEPTED")
    assert queue(con)["discrepancy_id"].to_list() == ["b"]
    assert queue(con, state="ACCEPTED")["discrepancy_id"].to_list() == ["a"]
    evaluate(con, D2, ["a", "b"], amount=11.0)
    assert sorted(queue(con)["discrepancy_id"].to_list()) == ["a", "b"]


def test_unknown_ids_apply_nothing_and_unchanged_values_write_no_event(con):
    evaluate(con, D1, ["a"])
    with pytest.raises(ReviewError, match="unknown discrepancy id zz"):
        apply_changes(con, [Change("a", review_state="RECOVERED"), Change("zz", review_state="RECOVERED")],
                      actor="ana", source="cli")
    assert events(con) == [] and review(con)["a"][1] == "NEW"
    decide(con, "a", "RECOVERED", note="chargeback won")
    assert decide(con, "a", "RECOVERED", note="chargeback won") == []
    assert decide(con, "a", "RECOVERED", note="money in on 3 March") == [("a", "note", "chargeback won",
                                                                          "money in on 3 March")]
    assert decide(con, "a", "RECOVERED", assignee=None) == []   # unassigning the unassigned
    assert review(con)["a"] == ("OPEN", "RECOVERED", None, "money in on 3 March")
    assert con.execute('SELECT count(DISTINCT "at") >= 1 AND bool_and("at" <= $now) FROM recon.review_events',
                       {"now": datetime.utcnow()}).fetchone()[0]


def test_a_decision_broken_by_a_changed_amount_stays_broken_when_the_amount_shrinks_back(con):
    evaluate(con, D1, ["a"])
    decide(con, "a", "ACCEPTED")
    evaluate(con, D2, ["a"], amount=12.0)
    assert review(con)["a"][1] == "NEW"
    evaluate(con, D3, ["a"], amount=10.0)    # back to the amount it was accepted on
    assert review(con)["a"][1] == "NEW", "a break that grew needs a new look, whatever it does next"
    # a backfill of an earlier date with another amount does not break a later decision
    decide(con, "a", "ACCEPTED")
    evaluate(con, D1, ["a"], amount=99.0)
    assert review(con)["a"][1] == "ACCEPTED"


def test_investigating_is_kept_when_the_amount_changes(con):
    evaluate(con, D1, ["a"])
    decide(con, "a", "INVESTIGATING", "bo")
    evaluate(con, D2, ["a"], amount=15.0)
    assert review(con)["a"] == ("OPEN", "INVESTIGATING", "bo", None)


def test_an_old_workbook_imported_again_never_accepts_a_break_at_an_amount_nobody_saw(con, tmp_path):
    import shutil

    import openpyxl

    from pipelines.export import write_export
    from pipelines.review_import import import_workbook
    from pipelines.workbook import OPEN_SHEET

    evaluate(con, D1, ["a", "b"])
    path = write_export(con, tmp_path / "exports", D1)["workbook"]
    filled = tmp_path / "filled.xlsx"
    shutil.copy(path, filled)
    book = openpyxl.load_workbook(filled)
    sheet = book[OPEN_SHEET]
    col = {c.value: c.column for c in sheet[1]}
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, col["Discrepancy ID"]).value == "a")
    sheet.cell(row, col["Review state"]).value = "ACCEPTED"
    sheet.cell(row, col["Note"]).value = "tolerated"
    book.save(filled)
    assert import_workbook(con, filled, actor="ana").applied == [("a", "review_state", "NEW", "ACCEPTED")]
    evaluate(con, D2, ["a", "b"], amount=12.0)          # the break grew: a new look
    assert review(con)["a"][1] == "NEW"
    again = import_workbook(con, filled, actor="ana")
    assert again.applied == [] and len(events(con)) == 1
    assert again.rejected == [f"row {row}: the amount of a changed since this workbook was exported "
                              "(10.00 -> 12.00): review it in the latest workbook"]
    assert review(con)["a"][1] == "NEW"
