"""The table-driven checks (checks/table_checks.py): each fails on a frame built to break it,
with the failing rows in its sample, and passes on a good frame."""
from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import pytest

from checks.table_checks import CHECKS, asset_checks

T = datetime(2026, 3, 30, 12)
CASES = {
    "oc_orders_valid": (
        {"order_id": [1, 2, 3], "currency_code": ["EUR", "USD", "GBP"], "currency_value": [1.0, 1.085, 0.8612]},
        {"order_id": [1, 1, 3], "currency_code": ["EUR", None, "GBP"], "currency_value": [1.0, 1.0, 0.0]},
    ),
    "oc_products_valid": (
        {"product_id": [1, 2], "quantity": [5, 0]},
        {"product_id": [1, 1], "quantity": [5, None]},
    ),
    "wms_stock_adjustments_valid": (
        {"transaction_number": ["A", "B", "C"], "completed_at": [T, T, T],
         "fetched_at": [T, T + timedelta(hours=1), None]},
        # a repeat, an undated one, and one completed a year after it was fetched (clock skew)
        {"transaction_number": ["A", "A", "C"], "completed_at": [T, None, T + timedelta(days=365)],
         "fetched_at": [T, T, T]},
    ),
    "wms_probed_returns_valid": (
        {"return_reference": ["Return-1"], "state": ["Completed"]},
        {"return_reference": ["Return-1", None], "state": ["Shipped", "Completed"]},
    ),
    "wms_probed_line_items_known_state": (
        {"state": ["Undamaged", "Missing"]},
        {"state": ["Undamaged", "Lost"]},
    ),
    "wms_tracking_probe_log_valid": (
        {"rma_reference": ["RMA-1", "RMA-2"], "tracking_id": ["X1", "X1"], "returns_found": [0, 1]},
        {"rma_reference": ["RMA-1", "RMA-1"], "tracking_id": ["X1", "X1"], "returns_found": [0, -1]},
    ),
    "wms_return_units_valid": (
        {"return_reference": ["R1", "R1"], "line_item_reference": ["1", "2"], "state": ["Undamaged", "Damaged"]},
        {"return_reference": ["R1", "R1"], "line_item_reference": ["1", "1"], "state": ["Undamaged", "Broken"]},
    ),
    "stock_adjustment_lines_unique": (
        {"transaction_number": ["A", "A"], "sku": ["S1", "S2"]},
        {"transaction_number": ["A", "A"], "sku": ["S1", "S1"]},
    ),
    "discrepancy_detections_unique_id": (
        {"discrepancy_id": ["D-1", "D-2"], "rule": ["OVER_REFUND", "OVER_REFUND"]},
        {"discrepancy_id": ["D-1", "D-1"], "rule": ["OVER_REFUND", "OVER_REFUND"]},
    ),
    "payment_refunds_valid": (
        {"refund_id": ["re_1", "re_2"], "amount": [1.5, 0.0], "currency": ["EUR", "JPY"],
         "status": ["succeeded", "failed"]},
        # a refund twice, an amount missing, an unknown status
        {"refund_id": ["re_1", "re_1"], "amount": [1.5, None], "currency": ["EUR", "EUR"],
         "status": ["succeeded", "paid"]},
    ),
    "rma_platform_orders_valid": (
        {"rma_id": ["a", "a"], "updated_at": [T, T + timedelta(hours=1)], "return_reference": ["RP-1", "RP-1"]},
        {"rma_id": ["a", "a"], "updated_at": [T, T], "return_reference": ["RP-1", None]},
    ),
    "rma_platform_orders_no_anomaly": (
        {"processing_status": ["ACCEPTED", "ON_HOLD"]},
        {"processing_status": ["ACCEPTED", "ANOMALY"]},
    ),
    "rma_platform_lines_valid": (
        {"rma_id": ["a", "a"], "updated_at": [T, T], "line_id": ["1", "2"], "quantity": [1, 3]},
        {"rma_id": ["a", "a"], "updated_at": [T, T], "line_id": ["1", "1"], "quantity": [1, 0]},
    ),
    "rma_platform_status_history_valid": (
        {"dimension": ["PROCESSING", "DELIVERY"]},
        {"dimension": ["PROCESSING", "SHIPPING"]},
    ),
    "credit_notes_unique": (
        {"credit_note_number": ["CN-1", "CN-2"]},
        {"credit_note_number": ["CN-1", "CN-1"]},
    ),
    "provider_refunds_unique": (
        {"refund_id": ["re_1", "re_2"]},
        {"refund_id": ["re_1", "re_1"]},
    ),
    "payment_matches_one_note_per_refund": (
        {"refund_id": ["re_1", "re_2"], "method": ["reference", "order_amount"]},
        {"refund_id": ["re_1", "re_1"], "method": ["reference", "amount"]},
    ),
    "stock_levels_unique_sku": (
        {"sku": ["S1", "S2"]},
        {"sku": ["S1", "S1"]},
    ),
}


def test_every_table_check_has_a_case_and_is_registered():
    assert set(CASES) == set(CHECKS)
    assert {next(iter(c.check_specs)).name for c in asset_checks} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_fails_on_a_broken_frame_and_passes_on_a_good_one(name):
    good, bad = CASES[name]
    passed = CHECKS[name].run(pl.DataFrame(good))
    assert passed.success and passed.failing_rows == [], passed.summary()
    failed = CHECKS[name].run(pl.DataFrame(bad))
    assert not failed.success
    assert failed.unexpected_count >= 1 and failed.failing_rows


def test_stock_adjustment_completed_after_its_fetch_is_reported():
    skewed = {"transaction_number": ["A", "B"], "completed_at": [T, T + timedelta(days=365)],
              "fetched_at": [T, T]}
    outcome = CHECKS["wms_stock_adjustments_valid"].run(pl.DataFrame(skewed))
    assert not outcome.success
    assert "completed_at <= fetched_at (no clock skew)" in outcome.summary()
