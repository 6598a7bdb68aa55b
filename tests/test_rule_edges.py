"""Every rule at its edges (reconciliation.md): hand-built raw rows in a real DuckDB file, the
real SQL of every core / recon table and every rule. No mocks."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from tests.rule_world import DAY, SECOND, T, RuleWorld, describe


@pytest.fixture
def w(tmp_path):
    world = RuleWorld(tmp_path)
    yield world
    world.close()


def one_line(w, order_id=100, opid=1001, *, price="10.00", quantity=2, currency="EUR", model="TS-RED"):
    w.order(order_id, currency=currency)
    w.line(opid, order_id, model, quantity=quantity, price=price)


# ---------------------------------------------------------------- money: tolerance is exact
@pytest.mark.parametrize("unit, refunds, fires, amount", [
    ("10.00", ["10.01"], False, None),                 # exactly one cent over: within tolerance
    ("10.00", ["10.011"], True, Decimal("0.01")),      # one cent and a tenth over
    ("10.00", ["10.015"], True, Decimal("0.02")),      # half-up on the exact decimal
    ("107.995", ["108.005"], False, None),             # 3-decimal amount, exactly 0.01 over
    ("107.995", ["108.006"], True, Decimal("0.01")),
    ("10.00", ["25.50"], True, Decimal("15.50")),
])
def test_over_refund_tolerance_edges(w, unit, refunds, fires, amount):
    one_line(w, price=unit, quantity=2)
    w.rma(7, 100, quantity=1)
    w.refund("CN-1", 100, 1001, refunds[0])
    hits = w.run()
    over = w.only(hits, "OVER_REFUND")
    assert not w.only(hits, "DUPLICATE_REFUND")
    if not fires:
        assert over == [], describe(hits)
    else:
        assert len(over) == 1, describe(hits)
        assert over[0]["amount_at_risk"] == amount
        assert over[0]["order_line_reference"] == "1001" and over[0]["refund_reference"] == "CN-1"
        assert Decimal(str(over[0]["details"]["refunded_amount"])) == Decimal(refunds[0])


@pytest.mark.parametrize("unit, refunds, fires, amount", [
    ("10.00", ["5.00", "5.01"], False, None),
    ("10.00", ["5.00", "5.011"], True, Decimal("0.01")),
    ("107.995", ["54.000", "54.005"], False, None),    # 108.005: exactly 0.01 over
    ("107.995", ["54.000", "54.006"], True, Decimal("0.01")),
    ("10.00", ["10.00", "10.00"], True, Decimal("10.00")),
])
def test_duplicate_refund_tolerance_edges(w, unit, refunds, fires, amount):
    one_line(w, price=unit, quantity=2)
    w.rma(7, 100, quantity=1)
    for i, a in enumerate(refunds):
        w.refund(f"CN-{i + 1}", 100, 1001, a)
    hits = w.run()
    dup = w.only(hits, "DUPLICATE_REFUND")
    assert not w.only(hits, "OVER_REFUND")
    if not fires:
        assert dup == [], describe(hits)
    else:
        assert len(dup) == 1, describe(hits)
        assert dup[0]["amount_at_risk"] == amount
        assert dup[0]["refund_reference"] == "CN-1,CN-2"
        assert Decimal(str(dup[0]["details"]["refunded_amount"])) == sum(Decimal(a) for a in refunds)


# ---------------------------------------------------------------- refunded units, receipt
@pytest.mark.parametrize("refunded, fires", [("15.00", True), ("14.99", False)])
def test_refund_without_receipt_units_round_half_up(w, refunded, fires):
    one_line(w)
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - 2 * DAY)
    w.unit("RMA-7")
    w.refund("CN-1", 100, 1001, refunded)
    hits = w.run()
    rwr = w.only(hits, "REFUND_WITHOUT_RECEIPT")
    if fires:   # 15.00 / 10.00 = 1.5 -> 2 units > 1 received
        assert len(rwr) == 1, describe(hits)
        assert rwr[0]["quantity_gap"] == 1 and rwr[0]["amount_at_risk"] == Decimal("10.00")
    else:
        assert rwr == [], describe(hits)


@pytest.mark.parametrize("arrived, fires", [(T, False), (T + SECOND, True)])
def test_refund_without_receipt_parcel_arrived_exactly_at_t(w, arrived, fires):
    one_line(w)
    w.rma(7, 100, quantity=1)
    w.wms_return("RMA-7", 100, arrived_at=arrived, updated_at=T - DAY)
    w.unit("RMA-7", processed_at=T - DAY)
    w.refund("CN-1", 100, 1001, "10.00")
    hits = w.run()
    rwr = w.only(hits, "REFUND_WITHOUT_RECEIPT")
    assert (len(rwr) == 1) == fires, describe(hits)
    if fires:
        assert rwr[0]["amount_at_risk"] == Decimal("10.00") and rwr[0]["quantity_gap"] == 1


@pytest.mark.parametrize("refunded, damaged_processed, fires", [
    ("20.00", T, True),              # graded Damaged exactly at T: damaged
    ("20.00", T + SECOND, False),    # graded after T: waiting at T, not damaged
    ("15.00", T, True),              # 1.5 units -> 2 (half-up) > 2 - 1
    ("14.99", T, False),             # 1 unit, not more than received - damaged
])
def test_refund_for_damaged_goods_edges(w, refunded, damaged_processed, fires):
    one_line(w)
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - 2 * DAY, updated_at=T + DAY)
    w.unit("RMA-7", "TS-RED", "Undamaged")
    w.unit("RMA-7", "TS-RED", "Damaged", processed_at=damaged_processed)
    w.refund("CN-1", 100, 1001, refunded)
    hits = w.run()
    dmg = w.only(hits, "REFUND_FOR_DAMAGED_GOODS")
    assert not w.only(hits, "REFUND_WITHOUT_RECEIPT"), describe(hits)
    assert (len(dmg) == 1) == fires, describe(hits)
    if fires:
        assert dmg[0]["quantity_gap"] == 1 and dmg[0]["amount_at_risk"] == Decimal("10.00")


# ---------------------------------------------------------------- RECEIVED_NOT_REFUNDED
@pytest.mark.parametrize("completed, action, fires", [
    (T - 3 * DAY, None, False),
    (T - 3 * DAY - SECOND, None, True),
    (T - 3 * DAY - SECOND, "Store Credit Voucher", False),   # unknown action: not judged
    (T - 3 * DAY - SECOND, "Replacement Sent", False),
])
def test_received_not_refunded_sla_edges(w, completed, action, fires):
    one_line(w)
    w.rma(7, 100, quantity=1, action=action)
    w.wms_return("RMA-7", 100, arrived_at=completed - DAY, completed_at=completed)
    w.unit("RMA-7", processed_at=completed - DAY)
    hits = w.run()
    rnr = w.only(hits, "RECEIVED_NOT_REFUNDED")
    assert (len(rnr) == 1) == fires, describe(hits)
    if fires:
        assert rnr[0]["quantity_gap"] == 1 and rnr[0]["amount_at_risk"] == Decimal("10.00")


# ---------------------------------------------------------------- QUANTITY_MISMATCH
@pytest.mark.parametrize("completed, fires", [(T, True), (T + SECOND, False)])
def test_quantity_mismatch_all_completed_at_t(w, completed, fires):
    one_line(w, quantity=3)
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - DAY, completed_at=completed, updated_at=T - DAY)
    w.unit("RMA-7")
    hits = w.run()
    qm = w.only(hits, "QUANTITY_MISMATCH")
    assert (len(qm) == 1) == fires, describe(hits)
    if fires:
        assert qm[0]["quantity_gap"] == -1 and qm[0]["amount_at_risk"] == Decimal("10.00")


def test_quantity_mismatch_requested_capped_at_ordered(w):
    one_line(w, quantity=2)
    w.rma(7, 100, quantity=3)
    w.wms_return("RMA-7", 100, arrived_at=T - 3 * DAY, completed_at=T - 2 * DAY)
    w.unit("RMA-7")
    w.unit("RMA-7")
    hits = w.run()
    assert not w.only(hits, "QUANTITY_MISMATCH"), describe(hits)


# ---------------------------------------------------------------- RMA_NOT_RECEIVED
@pytest.mark.parametrize("status, since, fires", [
    ("Awaiting Products", T - 21 * DAY, False),
    ("Awaiting Products", T - 21 * DAY - SECOND, True),
    ("Awaiting Pickup", T - 40 * DAY, False),          # unmapped status: skipped
])
def test_rma_not_received_transit_edges(w, status, since, fires):
    one_line(w)
    w.rma(7, 100, quantity=1, status=status, at=since)
    hits = w.run()
    rnr = w.only(hits, "RMA_NOT_RECEIVED")
    assert (len(rnr) == 1) == fires, describe(hits)
    if fires:
        assert rnr[0]["rma_reference"] == "RMA-7" and rnr[0]["amount_at_risk"] == Decimal("10.00")
        assert rnr[0]["quantity_gap"] == 1 and rnr[0]["sku"] == "TS-RED"


# ---------------------------------------------------------------- STATUS_MISMATCH
@pytest.mark.parametrize("status, completed, kind", [
    ("Awaiting Products", T - 2 * DAY, None),
    ("Awaiting Products", T - 2 * DAY - SECOND, "wms_completed_rma_open"),
    ("Pending", T - 2 * DAY - SECOND, "wms_completed_rma_open"),
    ("Awaiting Pickup", T - 9 * DAY, None),           # unmapped status: skipped
    ("Complete", T, None),                             # WMS Completed exactly at T
    ("Complete", T + SECOND, "rma_completed_wms_not_completed"),
])
def test_status_mismatch_edges(w, status, completed, kind):
    one_line(w)
    w.rma(7, 100, quantity=1, status=status, at=T - 20 * DAY)
    w.wms_return("RMA-7", 100, arrived_at=T - 10 * DAY, completed_at=completed, updated_at=T - 10 * DAY)
    w.unit("RMA-7", processed_at=T - 10 * DAY)
    hits = w.run()
    sm = w.only(hits, "STATUS_MISMATCH")
    if kind is None:
        assert sm == [], describe(hits)
    else:
        assert len(sm) == 1, describe(hits)
        assert sm[0]["details"]["kind"] == kind and sm[0]["amount_at_risk"] == Decimal("0")
        assert sm[0]["rma_reference"] == "RMA-7"


def test_status_mismatch_unmapped_completed_name_skipped(w):
    """An unknown name for a closed RMA with a WMS return not completed: not judged."""
    one_line(w)
    w.rma(7, 100, quantity=1, status="Closed By Shop", at=T - 20 * DAY)
    w.wms_return("RMA-7", 100, arrived_at=T - 10 * DAY)
    w.unit("RMA-7")
    hits = w.run()
    assert not w.only(hits, "STATUS_MISMATCH"), describe(hits)
    assert not w.only(hits, "RMA_NOT_RECEIVED"), describe(hits)


# ---------------------------------------------------------------- RESTOCK / UNSYNCED
@pytest.mark.parametrize("completed, fires", [(T - DAY, False), (T - DAY - SECOND, True)])
def test_restock_mismatch_lag_edges(w, completed, fires):
    one_line(w)
    w.rma(7, 100, quantity=1)
    w.wms_return("RMA-7", 100, arrived_at=completed - DAY, completed_at=completed)
    w.unit("RMA-7", processed_at=completed - DAY)
    hits = w.run()
    rm = w.only(hits, "RESTOCK_MISMATCH")
    assert (len(rm) == 1) == fires, describe(hits)
    if fires:
        assert rm[0]["return_reference"] == "RMA-7" and rm[0]["sku"] == "TS-RED"
        assert rm[0]["quantity_gap"] == -1 and rm[0]["amount_at_risk"] == Decimal("10.00")


def test_restock_mismatch_damaged_put_back_on_sale(w):
    one_line(w)
    w.rma(7, 100, quantity=1)
    w.wms_return("RMA-7", 100, arrived_at=T - 4 * DAY, completed_at=T - 3 * DAY)
    w.unit("RMA-7", state="Damaged", processed_at=T - 4 * DAY)
    w.adjustment("ADJ-1", "RMA-7", found=1, completed_at=T - 3 * DAY)
    hits = w.run()
    rm = w.only(hits, "RESTOCK_MISMATCH")
    assert len(rm) == 1 and rm[0]["quantity_gap"] == 1, describe(hits)


@pytest.mark.parametrize("restocked, fires", [(T - 7 * DAY, False), (T - 7 * DAY + SECOND, True)])
def test_unsynced_stock_adjustment_lookback_edges(w, restocked, fires):
    one_line(w)
    w.rma(7, 100, quantity=1, at=T - 20 * DAY)
    w.wms_return("RMA-7", 100, created_at=T - 15 * DAY, arrived_at=T - 10 * DAY, completed_at=T - 9 * DAY)
    w.unit("RMA-7", processed_at=T - 10 * DAY)
    w.adjustment("ADJ-1", "RMA-7", found=1, completed_at=restocked)
    w.product(1, "TS-RED", quantity=3, price="10.00")
    w.stock("TS-RED", 5)
    hits = w.run()
    us = w.only(hits, "UNSYNCED_STOCK_ADJUSTMENT")
    assert (len(us) == 1) == fires, describe(hits)
    if fires:
        assert us[0]["sku"] == "TS-RED" and us[0]["quantity_gap"] == 2
        assert us[0]["amount_at_risk"] == Decimal("20.00") and us[0]["return_reference"] == "RMA-7"


# ---------------------------------------------------------------- WMS-return rules
def test_orphan_wms_return(w):
    one_line(w, price="12.50")
    w.wms_return("WR-1", 100, arrived_at=T - DAY)          # no RMA at all
    w.unit("WR-1")
    w.unit("WR-1")
    w.wms_return("WR-2", 999, arrived_at=T - DAY)          # unknown order
    w.unit("WR-2")
    w.wms_return("WR-3", 100, created_at=T + SECOND)       # created after T: does not exist yet
    w.unit("WR-3")
    hits = w.run()
    orphans = {h["return_reference"]: h for h in w.only(hits, "ORPHAN_WMS_RETURN")}
    assert set(orphans) == {"WR-1", "WR-2"}, describe(hits)
    assert orphans["WR-1"]["amount_at_risk"] == Decimal("25.00") and orphans["WR-1"]["quantity_gap"] == 2
    assert orphans["WR-2"]["amount_at_risk"] == Decimal("0")


def test_orphan_wms_return_matched_by_order_and_sku_is_not_orphan(w):
    one_line(w)
    w.rma(7, 100, quantity=1)
    w.wms_return("WR-9", 100, arrived_at=T - DAY)
    w.unit("WR-9")
    hits = w.run()
    assert not w.only(hits, "ORPHAN_WMS_RETURN"), describe(hits)


@pytest.mark.parametrize("wms_order, fires", [(555, True), (100, False)])
def test_reference_mismatch(w, wms_order, fires):
    one_line(w)
    w.order(555)
    w.rma(7, 100, quantity=1, tracking="1ZTYPO0001")
    w.history(7, "Awaiting Products", T - 5 * DAY, tracking="1ZRIGHT0002")   # the correction wins
    w.history(7, "Awaiting Products", T + SECOND, tracking="1ZLATER0003")    # after T: ignored
    w.wms_return("WR-5", wms_order, tracking="1ZRIGHT0002", arrived_at=T - DAY)
    w.unit("WR-5")
    w.wms_return("WR-6", 555, tracking="1ZLATER0003", arrived_at=T - DAY)
    w.unit("WR-6")
    hits = w.run()
    rm = w.only(hits, "REFERENCE_MISMATCH")
    if fires:
        assert len(rm) == 1, describe(hits)
        assert rm[0]["return_reference"] == "WR-5" and rm[0]["rma_reference"] == "RMA-7"
        assert rm[0]["order_reference"] == "555" and rm[0]["amount_at_risk"] == Decimal("0")
    else:
        assert rm == [], describe(hits)
    assert "WR-5" not in {h["return_reference"] for h in w.only(hits, "ORPHAN_WMS_RETURN")}


# ---------------------------------------------------------------- ORPHAN_REFUND
def test_orphan_refund_edges(w):
    one_line(w)                                   # order 100, line 1001
    w.order(600, status_id=0, status_name="")     # abandoned checkout
    w.line(6001, 600)
    w.order(500)
    w.line(5002, 500, "OTHER")
    w.reject("storefront", "price not a number", record_key="5001", order_reference=500,
             order_line_reference=5001)
    w.refund("CN-A", 600, 6001, "10.00")          # abandoned checkout's line: orphan
    w.refund("CN-B", 500, 5001, "11.00")          # rejected line: unjudged, not orphan
    w.refund("CN-C", 100, 1009, "12.00")          # no such row in a known order: orphan
    w.refund("CN-D", 777, 7001, "13.00")          # unknown order: orphan
    w.refund("CN-E", 100, "SHIPPING", "4.95")     # shipping names no order line
    hits = w.run()
    orphans = {h["refund_reference"]: h for h in w.only(hits, "ORPHAN_REFUND")}
    assert set(orphans) == {"CN-A", "CN-C", "CN-D"}, describe(hits)
    assert orphans["CN-A"]["amount_at_risk"] == Decimal("10.00")
    assert orphans["CN-C"]["order_line_reference"] == "1009"
    assert orphans["CN-D"]["amount_at_risk"] == Decimal("13.00")


# ---------------------------------------------------------------- option variants
@pytest.mark.parametrize("first, second", [(9, 10), (10, 9)])
def test_variants_are_one_order_line(w, first, second):
    w.order(100)
    prices = {9: "10.00", 10: "12.00"}
    for opid in (first, second):
        w.line(opid, 100, "TS-RED", quantity=1, price=prices[opid])
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - DAY)
    w.unit("RMA-7")
    w.unit("RMA-7")
    w.refund("CN-1", 100, 9, "10.00")
    w.refund("CN-2", 100, 10, "12.00")
    hits = w.run()
    bad = [h for h in hits if h["rule"] in ("OVER_REFUND", "DUPLICATE_REFUND", "REFUND_WITHOUT_RECEIPT",
                                            "ORPHAN_REFUND", "QUANTITY_MISMATCH")]
    assert bad == [], describe(hits)
    assert all(n == 1 for n in Counter(h["discrepancy_id"] for h in hits).values()), describe(hits)
    assert w.query("SELECT order_line_reference, unit_gross, ordered_quantity FROM core.order_lines") == [
        ("9,10", Decimal("11.00000000"), 2)]


@pytest.mark.parametrize("first, second", [(9, 10), (10, 9)])
def test_variants_one_detection_with_numeric_line_reference(w, first, second):
    w.order(100)
    prices = {9: "10.00", 10: "12.00"}
    for opid in (first, second):
        w.line(opid, 100, "TS-RED", quantity=1, price=prices[opid])
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - DAY)
    w.unit("RMA-7")                               # only one unit arrived
    w.refund("CN-1", 100, 9, "10.00")
    w.refund("CN-2", 100, 10, "12.00")
    hits = w.run()
    rwr = w.only(hits, "REFUND_WITHOUT_RECEIPT")
    assert len(rwr) == 1, describe(hits)
    assert rwr[0]["order_line_reference"] == "9,10"
    assert rwr[0]["quantity_gap"] == 1 and rwr[0]["amount_at_risk"] == Decimal("11.00")
    assert rwr[0]["refund_reference"] == "CN-1,CN-2"
    assert all(n == 1 for n in Counter(h["discrepancy_id"] for h in hits).values()), describe(hits)


def test_rma_belongs_to_order_line_by_model(w):
    one_line(w, quantity=1)
    w.rma(7, 100, " ts-red ", quantity=1, product_id=0, at=T - 30 * DAY)
    w.refund("CN-1", 100, 1001, "10.00")
    hits = w.run()
    assert not w.only(hits, "OVER_REFUND"), describe(hits)       # the RMA's unit is requested
    rnr = w.only(hits, "RMA_NOT_RECEIVED")
    assert len(rnr) == 1, describe(hits)
    assert rnr[0]["sku"] == "TS-RED" and rnr[0]["order_line_reference"] == "1001"
    assert rnr[0]["amount_at_risk"] == Decimal("10.00")


# ---------------------------------------------------------------- credit note versions
@pytest.mark.parametrize("versions, money_out", [
    # (status, version_date offset from T, source_line)
    ([("PENDING", -2 * DAY, 1), ("RELEASED", DAY, 2)], False),          # released only after T
    ([("PENDING", -2 * DAY, 1), ("RELEASED", -SECOND, 2)], True),
    ([("RELEASED", -DAY, 1), ("PENDING", -2 * DAY, 2)], True),          # stale PENDING redelivered later
    ([("PENDING", -2 * DAY, 2), ("RELEASED", -DAY, 1)], True),          # file order does not matter
    ([("RELEASED", -2 * DAY, 1), ("CANCELLED", -DAY, 2)], False),
])
def test_credit_note_state_at_t(w, versions, money_out):
    one_line(w)                                   # no RMA: any money out is over-refunded
    for status, offset, line in versions:
        w.refund("CN-1", 100, 1001, "10.00", status=status, version_date=T + offset,
                 credit_note_date=T - 3 * DAY, source_line=line)
    hits = w.run()
    over = w.only(hits, "OVER_REFUND")
    assert (len(over) == 1) == money_out, describe(hits)
    if money_out:
        assert over[0]["amount_at_risk"] == Decimal("10.00")


# ---------------------------------------------------------------- WMS versions as of T
def test_wms_version_updated_by_t_is_used(w):
    one_line(w)
    w.rma(7, 100, quantity=2)
    w.wms_return("RMA-7", 100, arrived_at=T - 2 * DAY, updated_at=T - DAY, fetched_on=w.d - 2 * DAY)
    w.unit("RMA-7")
    w.wms_return("RMA-7", 100, arrived_at=T - 2 * DAY, updated_at=T + 3600 * SECOND, fetched_on=w.d)
    w.unit("RMA-7", processed_at=T - DAY)
    w.unit("RMA-7", processed_at=T - DAY)        # the later version lists a second unit
    w.refund("CN-1", 100, 1001, "20.00")
    hits = w.run()
    rwr = w.only(hits, "REFUND_WITHOUT_RECEIPT")
    assert len(rwr) == 1 and rwr[0]["quantity_gap"] == 1, describe(hits)


def test_wms_fetched_after_t_grades_after_t_not_counted(w):
    one_line(w)
    w.rma(7, 100, quantity=1)
    w.wms_return("RMA-7", 100, arrived_at=T - DAY, completed_at=T + 1800 * SECOND, updated_at=T + 3600 * SECOND)
    w.unit("RMA-7", state="Damaged", processed_at=T + 1800 * SECOND)
    w.refund("CN-1", 100, 1001, "10.00")
    hits = w.run()
    assert not w.only(hits, "REFUND_FOR_DAMAGED_GOODS"), describe(hits)
    assert not w.only(hits, "REFUND_WITHOUT_RECEIPT"), describe(hits)   # arrived: received
    assert not w.only(hits, "QUANTITY_MISMATCH"), describe(hits)        # not Completed at T
    assert not w.only(hits, "RESTOCK_MISMATCH"), describe(hits)


# ---------------------------------------------------------------- currency
def test_refund_currency_mismatch(w):
    one_line(w, quantity=1)
    w.rma(7, 100, quantity=1)
    w.wms_return("RMA-7", 100, arrived_at=T - DAY)
    w.unit("RMA-7")
    w.refund("CN-USD", 100, 1001, "30.00", currency="USD")
    w.refund("CN-EUR", 100, 1001, "10.00", currency="EUR")
    hits = w.run()
    rcm = w.only(hits, "REFUND_CURRENCY_MISMATCH")
    assert len(rcm) == 1, describe(hits)
    assert rcm[0]["refund_reference"] == "CN-USD" and rcm[0]["currency"] == "USD"
    assert rcm[0]["amount_at_risk"] == Decimal("30.00") and rcm[0]["order_line_reference"] == "1001"
    assert not w.only(hits, "OVER_REFUND") and not w.only(hits, "DUPLICATE_REFUND"), describe(hits)
    assert not w.only(hits, "ORPHAN_REFUND"), describe(hits)


# ---------------------------------------------------------------- unmapped RMA status
def test_unmapped_status_rma_counts_as_requested_and_matches(w):
    one_line(w, quantity=1)
    w.rma(7, 100, quantity=1, status="Awaiting Pickup", at=T - 40 * DAY)
    w.wms_return("RMA-7", 100, created_at=T - 30 * DAY)     # pre-authorised, not arrived
    w.refund("CN-1", 100, 1001, "10.00")
    hits = w.run()
    assert not w.only(hits, "OVER_REFUND"), describe(hits)
    assert not w.only(hits, "ORPHAN_WMS_RETURN"), describe(hits)
    assert not w.only(hits, "RMA_NOT_RECEIVED") and not w.only(hits, "STATUS_MISMATCH"), describe(hits)
    rwr = w.only(hits, "REFUND_WITHOUT_RECEIPT")          # still judged on units: money out, nothing in
    assert len(rwr) == 1 and rwr[0]["rma_reference"] == "RMA-7", describe(hits)
