"""The payment rules at their edges (reconciliation.md "Credit notes against payment-provider
refunds"): hand-built credit notes and provider refunds in a real DuckDB file, the real matching
and the real SQL of every rule. Defaults: tolerance 0.01, payment_match_days 3, payment_lag_days 3."""
from __future__ import annotations

from decimal import Decimal

import pytest

from tests.rule_world import DAY, SECOND, T, RuleWorld, describe

PAYMENT_RULES = ("CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE", "PAYMENT_AMOUNT_MISMATCH")
RELEASED = T - 10 * DAY


@pytest.fixture
def w(tmp_path):
    world = RuleWorld(tmp_path)
    yield world
    world.close()


def note(w, cn="CN-1", amount="100.00", *, order_id=100, released=RELEASED, currency=None, order_currency="EUR",
         status="RELEASED", shipping=None):
    """A credit note refunding one order line (and optionally SHIPPING) of a fresh order."""
    if not w.query("SELECT 1 FROM raw.oc_orders WHERE order_id = $o", {"o": order_id}):
        w.order(order_id, currency=order_currency)
        w.line(order_id * 10 + 1, order_id, "TS-RED", quantity=5, price="1000.00")
    w.refund(cn, order_id, order_id * 10 + 1, amount, currency=currency, status=status,
             credit_note_date=released - DAY, version_date=released, version_key=f"{cn}-v1")
    if shipping is not None:  # a second line of the same version
        w.refund(cn, order_id, "SHIPPING", shipping, currency=currency, status=status,
                 credit_note_date=released - DAY, version_date=released, version_key=f"{cn}-v1")


def payment_hits(w):
    w.payments_read()
    hits = w.run()
    return [h for h in hits if h["rule"] in PAYMENT_RULES]


def links(w):
    return dict(w.query("SELECT refund_id, credit_note_number || ' ' || method FROM recon.payment_matches "
                        "WHERE business_date = $d", {"d": w.d}))


# ---------------------------------------------------------------- paid exactly once: nothing
def test_a_note_paid_once_by_reference_or_by_order_and_amount_is_clean(w):
    note(w, "CN-1", order_id=100)
    note(w, "CN-2", "40.00", order_id=200, shipping="4.99")  # shipping counts in the note's amount
    w.payment("re_1", "100.00", order_id=100, credit_note="CN-1", created=RELEASED + 3600 * SECOND)
    w.payment("re_2", "44.99", order_id=200, created=RELEASED + 7200 * SECOND)
    assert payment_hits(w) == []
    assert links(w) == {"re_1": "CN-1 reference", "re_2": "CN-2 order_amount"}


def test_a_reference_match_needs_no_order_id(w):
    note(w, "CN-1")
    w.payment("re_1", "100.00", credit_note="CN-1", created=RELEASED + 60 * SECOND)
    assert payment_hits(w) == []
    assert links(w) == {"re_1": "CN-1 reference"}


# ---------------------------------------------------------------- the tolerance, exactly
@pytest.mark.parametrize("note_amount, paid, fires, gap", [
    ("100.00", "99.99", False, None),        # exactly the tolerance short
    ("100.00", "100.01", False, None),       # exactly the tolerance over
    ("100.00", "99.98", True, Decimal("0.02")),
    ("100.00", "100.02", True, Decimal("0.02")),
    ("100.005", "100.00", False, None),      # a three-decimal note, paid to the cent
    ("100.005", "99.99", True, Decimal("0.02")),  # 0.015 short, half-up to 0.02
])
def test_amount_mismatch_tolerance_edges(w, note_amount, paid, fires, gap):
    note(w, "CN-1", note_amount)
    w.payment("re_1", paid, order_id=100, credit_note="CN-1", created=RELEASED + 60 * SECOND)
    hits = payment_hits(w)
    if not fires:
        assert hits == [], describe(hits)
        return
    assert [h["rule"] for h in hits] == ["PAYMENT_AMOUNT_MISMATCH"], describe(hits)
    h = hits[0]
    assert h["amount_at_risk"] == gap and h["refund_reference"] == "CN-1" and h["order_reference"] == "100"
    assert Decimal(str(h["details"]["paid"])) == Decimal(paid)
    assert Decimal(str(h["details"]["note_amount"])) == Decimal(note_amount)
    assert [r["id"] for r in h["details"]["provider_refunds"]] == ["re_1"]


@pytest.mark.parametrize("paid, matched", [("100.01", True), ("99.99", True), ("100.02", False)])
def test_order_and_amount_match_within_the_tolerance_only(w, paid, matched):
    note(w, "CN-1")
    w.payment("re_1", paid, order_id=100, created=RELEASED + 60 * SECOND)
    hits = payment_hits(w)
    if matched:
        assert hits == [] and links(w) == {"re_1": "CN-1 order_amount"}
    else:  # no link at all: the note is unpaid and the payout ties to nothing
        assert sorted(h["rule"] for h in hits) == ["CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE"]
        assert links(w) == {}


# ---------------------------------------------------------------- the date window, exactly
@pytest.mark.parametrize("offset, matched", [
    (3 * DAY, True), (3 * DAY + SECOND, False), (-3 * DAY, True), (-3 * DAY - SECOND, False)])
def test_order_and_amount_match_within_payment_match_days_of_the_release(w, offset, matched):
    note(w, "CN-1", released=T - 12 * DAY)
    w.payment("re_1", "100.00", order_id=100, created=T - 12 * DAY + offset)
    payment_hits(w)
    assert links(w) == ({"re_1": "CN-1 order_amount"} if matched else {})


def test_a_reference_match_has_no_date_window(w):
    note(w, "CN-1", released=T - 30 * DAY)
    w.payment("re_1", "100.00", credit_note="CN-1", created=T - 4 * DAY)
    assert payment_hits(w) == [] and links(w) == {"re_1": "CN-1 reference"}


@pytest.mark.parametrize("released, fires", [(T - 3 * DAY, False), (T - 3 * DAY - SECOND, True)])
def test_not_paid_only_once_released_more_than_payment_lag_days(w, released, fires):
    note(w, "CN-1", "75.50", released=released)
    hits = payment_hits(w)
    if not fires:
        assert hits == [], describe(hits)
        return
    assert [(h["rule"], h["refund_reference"], h["amount_at_risk"], h["details"]["kind"]) for h in hits] == [
        ("CREDIT_NOTE_NOT_PAID", "CN-1", Decimal("75.50"), "no_payment")]
    assert hits[0]["explanation"] == (f"Credit note CN-1 for order 100 was released on {released:%Y-%m-%d} for "
                                      "75.50 EUR, but the payment provider shows no refund for it: the customer "
                                      "has not been paid.")


@pytest.mark.parametrize("created, fires", [(T - 3 * DAY, False), (T - 3 * DAY - SECOND, True)])
def test_payment_without_credit_note_only_after_payment_match_days(w, created, fires):
    w.order(300)
    w.payment("re_9", "12.34", order_id=300, created=created)
    hits = payment_hits(w)
    assert [(h["rule"], h["refund_reference"], h["order_reference"], h["amount_at_risk"], h["currency"])
            for h in hits] == ([("PAYMENT_WITHOUT_CREDIT_NOTE", "re_9", "300", Decimal("12.34"), "EUR")]
                               if fires else [])


def test_a_refund_created_after_t_is_not_seen(w):
    note(w, "CN-1")
    w.payment("re_1", "100.00", credit_note="CN-1", created=T + SECOND)
    hits = payment_hits(w)
    assert [(h["rule"], h["details"]["kind"]) for h in hits] == [("CREDIT_NOTE_NOT_PAID", "no_payment")]


# ---------------------------------------------------------------- parts, retries and failures
def test_two_partial_payouts_by_reference_add_up(w):
    note(w, "CN-1")
    w.payment("re_1", "60.00", credit_note="CN-1", created=RELEASED + 60 * SECOND)
    w.payment("re_2", "40.00", credit_note="CN-1", created=RELEASED + DAY)
    assert payment_hits(w) == []


def test_the_remainder_matches_by_order_and_amount_once_part_is_covered(w):
    note(w, "CN-1")
    w.payment("re_1", "70.00", credit_note="CN-1", order_id=100, created=RELEASED + 60 * SECOND)
    w.payment("re_2", "30.00", order_id=100, created=RELEASED + DAY)   # the amount not yet covered
    assert payment_hits(w) == []
    assert links(w) == {"re_1": "CN-1 reference", "re_2": "CN-1 order_amount"}


def test_two_partial_payouts_that_do_not_add_up(w):
    note(w, "CN-1")
    w.payment("re_1", "50.00", credit_note="CN-1", created=RELEASED + 60 * SECOND)
    w.payment("re_2", "30.00", credit_note="CN-1", created=RELEASED + DAY)
    hits = payment_hits(w)
    assert [(h["rule"], h["amount_at_risk"], h["details"]["kind"]) for h in hits] == [
        ("PAYMENT_AMOUNT_MISMATCH", Decimal("20.00"), "underpaid")]
    assert "re_1, re_2" in hits[0]["explanation"] and "20.00 EUR still unpaid" in hits[0]["explanation"]


def test_a_failed_attempt_then_a_succeeded_one(w):
    note(w, "CN-1")
    w.payment("re_1", "100.00", credit_note="CN-1", order_id=100, status="failed", created=RELEASED + 60 * SECOND)
    w.payment("re_2", "100.00", order_id=100, created=RELEASED + 3600 * SECOND)  # the failed one covered nothing
    assert payment_hits(w) == []
    assert links(w) == {"re_1": "CN-1 reference", "re_2": "CN-1 order_amount"}


@pytest.mark.parametrize("statuses, kind", [
    (["failed"], "payment_failed"), (["canceled", "failed"], "payment_failed"),
    (["pending"], "no_payment"), (["failed", "pending"], "no_payment")])
def test_not_paid_kind_follows_the_linked_attempts(w, statuses, kind):
    note(w, "CN-1")
    for k, status in enumerate(statuses):
        w.payment(f"re_{k}", "100.00", credit_note="CN-1", status=status, created=RELEASED + (k + 1) * 60 * SECOND)
    hits = payment_hits(w)
    assert [(h["rule"], h["details"]["kind"], h["amount_at_risk"]) for h in hits] == [
        ("CREDIT_NOTE_NOT_PAID", kind, Decimal("100.00"))]
    assert [r["status"] for r in hits[0]["details"]["provider_refunds"]] == statuses


def test_a_double_payout_is_the_note_amount_at_risk(w):
    note(w, "CN-1", "59.90")
    w.payment("re_1", "59.90", credit_note="CN-1", created=RELEASED + 60 * SECOND)
    w.payment("re_2", "59.90", credit_note="CN-1", created=RELEASED + 120 * SECOND)
    hits = payment_hits(w)
    assert [(h["rule"], h["amount_at_risk"], h["details"]["kind"]) for h in hits] == [
        ("PAYMENT_AMOUNT_MISMATCH", Decimal("59.90"), "overpaid")]
    assert hits[0]["explanation"] == ("Credit note CN-1 for order 100 owes 59.90 EUR, but the payment provider paid "
                                      "119.80 EUR in 2 refunds (re_1, re_2): 59.90 EUR paid too much.")


def test_a_repeat_without_reference_is_a_payment_without_credit_note(w):
    note(w, "CN-1")
    w.payment("re_1", "100.00", credit_note="CN-1", order_id=100, created=RELEASED + 60 * SECOND)
    w.payment("re_2", "100.00", order_id=100, created=RELEASED + DAY)  # nothing left to cover
    hits = payment_hits(w)
    assert [(h["rule"], h["refund_reference"], h["amount_at_risk"]) for h in hits] == [
        ("PAYMENT_WITHOUT_CREDIT_NOTE", "re_2", Decimal("100.00"))]


def test_first_hit_wins_in_created_order_over_two_equal_notes(w):
    note(w, "CN-1", released=RELEASED)
    note(w, "CN-2", released=RELEASED + 3600 * SECOND)
    w.payment("re_b", "100.00", order_id=100, created=RELEASED + 2 * 3600 * SECOND)
    w.payment("re_a", "100.00", order_id=100, created=RELEASED + 3 * 3600 * SECOND)
    assert payment_hits(w) == []
    assert links(w) == {"re_b": "CN-1 order_amount", "re_a": "CN-2 order_amount"}


def test_order_and_amount_needs_the_same_currency(w):
    note(w, "CN-1", order_currency="USD")
    w.payment("re_1", "100.00", currency="EUR", order_id=100, created=RELEASED + 60 * SECOND)
    hits = payment_hits(w)
    assert sorted(h["rule"] for h in hits) == ["CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE"]
    by_rule = {h["rule"]: h for h in hits}
    assert by_rule["CREDIT_NOTE_NOT_PAID"]["currency"] == "USD"
    assert by_rule["PAYMENT_WITHOUT_CREDIT_NOTE"]["currency"] == "EUR"


def test_zero_decimal_currency(w):
    note(w, "CN-1", "1500", order_currency="JPY")
    w.payment("re_1", "1500", currency="JPY", order_id=100, created=RELEASED + 60 * SECOND)
    assert payment_hits(w) == []
    assert w.query("SELECT amount_minor FROM raw.payment_refunds") == [(1500,)]


# ---------------------------------------------------------------- what is not judged
def test_nothing_is_judged_for_a_date_the_provider_was_not_read_for(w):
    note(w, "CN-1")
    hits = w.run()  # no poll: PAYMENTS_API_BASE=none
    assert [h for h in hits if h["rule"] in PAYMENT_RULES] == []


def test_a_note_named_by_a_rejected_record_is_not_judged(w):
    note(w, "CN-1", order_id=100)
    note(w, "CN-2", order_id=200)
    w.reject("payment_refunds", "amount is not an integer", record_key="re_bad", order_reference=200,
             credit_note_number="CN-2")
    w.reject("refund_ledger", "non-numeric amount", record_key="f.jsonl:3", order_reference=300,
             credit_note_number="CN-3")
    w.order(300)
    w.payment("re_3", "12.50", order_id=300, credit_note="CN-3", created=RELEASED)
    hits = payment_hits(w)
    # CN-1 is judged (unpaid); CN-2 (its payout was rejected) and re_3 (its note was rejected) are not
    assert [(h["rule"], h["refund_reference"]) for h in hits] == [("CREDIT_NOTE_NOT_PAID", "CN-1")]


def test_a_note_not_released_is_not_owed(w):
    note(w, "CN-1", status="PENDING")
    assert payment_hits(w) == []
