"""The discrepancy lifecycle (sql/recon/merge_into_discrepancies.sql) on hand-built detection
histories: OPEN/RESOLVED, first/last/resolved dates, reruns and out-of-order dates."""
from __future__ import annotations

from datetime import date, datetime

import pytest

from pipelines.reconcile import merge_discrepancies
from pipelines.resources.warehouse import connect

D1, D2, D3, D4 = (date(2026, 3, d) for d in (1, 2, 3, 4))


@pytest.fixture
def con(tmp_path):
    c = connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def evaluate(con, d: date, ids: list[str], amount: float = 10.0) -> None:
    """What a run of date d does: replace its detections, then merge."""
    con.execute("DELETE FROM recon.discrepancy_detections WHERE business_date = $d", {"d": d})
    for i in ids:
        con.execute("INSERT INTO recon.discrepancy_detections (business_date, discrepancy_id, rule, severity, "
                    "amount_at_risk, details) VALUES ($d, $i, 'OVER_REFUND', 'HIGH', $a, '{}')",
                    {"d": d, "i": i, "a": amount})
    merge_discrepancies(con, d, datetime(2026, 3, 10))


def table(con) -> dict[str, tuple]:
    rows = con.execute("SELECT discrepancy_id, status, business_date, first_detected_on, last_detected_on, "
                       "resolved_on, amount_at_risk FROM recon.discrepancies ORDER BY 1").fetchall()
    return {r[0]: r[1:] for r in rows}


def test_detected_then_fixed_is_resolved_with_the_same_id(con):
    evaluate(con, D1, ["a", "b"])
    assert table(con)["a"][:5] == ("OPEN", D1, D1, D1, None)
    evaluate(con, D2, ["b"])
    t = table(con)
    assert t["a"][:5] == ("RESOLVED", D2, D1, D1, D2)
    assert t["b"][:5] == ("OPEN", D2, D1, D2, None)
    assert len(t) == 2


def test_rerun_of_the_same_date_changes_nothing(con):
    evaluate(con, D1, ["a", "b"])
    evaluate(con, D2, ["b"])
    before = table(con)
    evaluate(con, D2, ["b"])
    assert table(con) == before
    assert con.execute("SELECT count(*) FROM recon.discrepancy_detections").fetchone()[0] == 3


def test_rerun_of_an_earlier_date_does_not_reopen_or_close_what_a_later_date_decided(con):
    evaluate(con, D1, ["a"])
    evaluate(con, D2, [])          # a resolved on D2
    evaluate(con, D3, ["c"])
    later = table(con)
    evaluate(con, D1, ["a"])       # rerun of D1 (still detects a)
    assert table(con) == later
    assert later["a"][:5] == ("RESOLVED", D3, D1, D1, D2)


def test_out_of_order_runs_give_the_same_table_as_in_order(tmp_path):
    histories = {D1: ["a", "b"], D2: ["b", "c"], D3: ["c"], D4: ["a"]}
    results = []
    for order in ([D1, D2, D3, D4], [D4, D2, D1, D3], [D3, D1, D4, D2]):
        c = connect(tmp_path / f"{'-'.join(str(d.day) for d in order)}.duckdb")
        for d in order:
            evaluate(c, d, histories[d])
        results.append(table(c))
        c.close()
    assert results[0] == results[1] == results[2]
    t = results[0]
    assert t["a"][:5] == ("OPEN", D4, D1, D4, None)      # reopened on D4: open again, first seen D1
    assert t["b"][:5] == ("RESOLVED", D4, D1, D2, D3)
    assert t["c"][:5] == ("RESOLVED", D4, D2, D3, D4)


def test_values_come_from_the_latest_detection(con):
    evaluate(con, D1, ["a"], amount=10.0)
    evaluate(con, D2, ["a"], amount=25.5)
    assert float(table(con)["a"][5]) == 25.5


def test_a_date_the_payment_provider_was_not_read_for_neither_resolves_nor_reopens_payment_findings(con):
    def run(d: date, polled: bool, found: list[tuple[str, str]]) -> None:
        con.execute("DELETE FROM state.payment_polls WHERE business_date = $d", {"d": d})
        if polled:
            con.execute("INSERT INTO state.payment_polls VALUES ($d, NULL, $d, 0, 0, 0, 1, $d)", {"d": d})
        con.execute("DELETE FROM recon.discrepancy_detections WHERE business_date = $d", {"d": d})
        for i, rule in found:
            con.execute("INSERT INTO recon.discrepancy_detections (business_date, discrepancy_id, rule, severity, "
                        "amount_at_risk, details) VALUES ($d, $i, $r, 'HIGH', 5, '{}')", {"d": d, "i": i, "r": rule})
        merge_discrepancies(con, d, datetime(2026, 3, 10))

    run(D1, True, [("pay", "CREDIT_NOTE_NOT_PAID"), ("goods", "OVER_REFUND")])
    run(D2, False, [])  # PAYMENTS_API_BASE=none that day: the goods break is gone, the payment one unjudged
    t = table(con)
    assert t["pay"][:5] == ("OPEN", D2, D1, D1, None)
    assert t["goods"][:5] == ("RESOLVED", D2, D1, D1, D2)
    run(D3, True, [])   # read again and gone: resolved on that date, not on the unread one
    assert table(con)["pay"][:5] == ("RESOLVED", D3, D1, D1, D3)
