"""Data-quality checks on the raw WMS tables (sources.md section 1).

Each ``check_<name>(frame)`` is a pure function over one business date's rows and returns a
``CheckOutcome``; the ``@dg.asset_check`` below it reads those rows from the warehouse and
reports the outcome to Dagster. Blocking checks (severity ERROR) stop the downstream assets:
they guard what would corrupt the reconciliation. The others warn.
"""

import dagster as dg
import polars as pl

from checks.gx_runner import CheckOutcome, expect, read_partition, run_expectations, to_check_result
from checks.steps import asset_check
from pipelines.partitions import business_date_of
from pipelines.resources.warehouse import WarehouseResource

WMS_RETURN_STATES = ("ReturnCreated", "ArrivedToWarehouse", "Completed")
LINE_ITEM_STATES = ("WaitingToBeProcessed", "Missing", "Damaged", "Undamaged")
ADJUSTMENT_AMOUNTS = ("lost_amount", "found_amount", "put_in_quarantine_amount", "release_from_quarantine_amount")


# --------------------------------------------------------------------------- raw/wms_returns

def check_wms_returns_unique_reference(frame: pl.DataFrame) -> CheckOutcome:
    """One row per returnReferenceNumber in a business date's poll."""
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="return_reference", label="return_reference is unique"),
    ])


def check_wms_returns_state_invariants(frame: pl.DataFrame) -> CheckOutcome:
    """state is a known WMS state and the timestamps agree with it (sources.md "State invariants"):
    ReturnCreated has neither arrived_at nor completed_at, ArrivedToWarehouse has arrived_at only,
    Completed has both, and created_at <= arrived_at <= completed_at."""
    arrived, completed = pl.col("arrived_at").is_not_null(), pl.col("completed_at").is_not_null()
    state = pl.col("state")
    frame = frame.with_columns(
        _timestamps_match_state=(
            pl.when(state == "ReturnCreated").then(~arrived & ~completed)
            .when(state == "ArrivedToWarehouse").then(arrived & ~completed)
            .when(state == "Completed").then(arrived & completed)
            .otherwise(True)   # unknown / null state: reported by the state expectations
        ),
    )
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="state", label="state is set"),
        expect("ExpectColumnValuesToBeInSet", column="state", value_set=list(WMS_RETURN_STATES),
               label="state is ReturnCreated / ArrivedToWarehouse / Completed"),
        expect("ExpectColumnValuesToBeInSet", column="_timestamps_match_state", value_set=[True],
               label="arrived_at / completed_at are set exactly as the state requires"),
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="arrived_at", column_B="created_at",
               or_equal=True, ignore_row_if="either_value_is_missing", label="created_at <= arrived_at"),
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="completed_at", column_B="arrived_at",
               or_equal=True, ignore_row_if="either_value_is_missing", label="arrived_at <= completed_at"),
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="completed_at", column_B="created_at",
               or_equal=True, ignore_row_if="either_value_is_missing", label="created_at <= completed_at"),
    ])


@asset_check(
    asset=["raw", "wms_returns"], blocking=False, description="WARN (not blocking): each WMS return appears once in the business date's poll. "
                "Harmless for the reconciliation (core.wms_returns keeps the latest version of each "
                "return) but a sign the connector's deduplication broke.",
)
def wms_returns_unique_reference(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_unique_reference(read_partition(warehouse, "raw.wms_returns", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


@asset_check(
    asset=["raw", "wms_returns"], blocking=False, description="WARN (not blocking): state is ReturnCreated / ArrivedToWarehouse / Completed and the "
                "arrival / completion timestamps match it, in order (created <= arrived <= completed). "
                "A record breaking the invariants is reported with its row, not repaired; the "
                "reconciliation derives each return's state from the timestamps.",
)
def wms_returns_state_invariants(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_state_invariants(read_partition(warehouse, "raw.wms_returns", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


SKEW_COLUMNS = ("created_at", "updated_at", "arrived_at", "completed_at")


def check_wms_returns_not_after_fetch(frame: pl.DataFrame) -> CheckOutcome:
    """No return is dated after the moment it was fetched (created / updated / arrived / completed
    <= fetched_at): a later date is a clock ahead or a mistyped year. The poll caps its watermark
    at fetched_at, so such a row cannot stop later polls, but its dates are wrong."""
    return run_expectations(frame, [
        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="fetched_at", column_B=column, or_equal=True,
               ignore_row_if="either_value_is_missing", label=f"{column} <= fetched_at (no clock skew)")
        for column in SKEW_COLUMNS
    ])


@asset_check(
    asset=["raw", "wms_returns"], blocking=False, description="WARN (not blocking): no return's createdAt / updatedAt / arrivedToWarehouseAt / completedAt "
                "is after the time it was fetched (the WMS clock ahead, or a mistyped year). The incremental "
                "watermark is capped at the fetch time, so polling goes on; the failing rows are listed.",
)
def wms_returns_not_after_fetch(context: dg.AssetCheckExecutionContext,
                                warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_not_after_fetch(read_partition(warehouse, "raw.wms_returns", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- raw/wms_return_line_items

def check_wms_line_items_known_state(frame: pl.DataFrame) -> CheckOutcome:
    """Every unit has one of the four grades (a missing grade is unknown too)."""
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="state", label="line item state is set"),
        expect("ExpectColumnValuesToBeInSet", column="state", value_set=list(LINE_ITEM_STATES),
               label="line item state is WaitingToBeProcessed / Missing / Damaged / Undamaged"),
    ])


def check_wms_line_items_valid(frame: pl.DataFrame) -> CheckOutcome:
    """(return_reference, line_item_reference) identifies a unit; every unit names its SKU."""
    return run_expectations(frame, [
        expect("ExpectCompoundColumnsToBeUnique", column_list=["return_reference", "line_item_reference"],
               label="(return_reference, line_item_reference) is unique"),
        expect("ExpectColumnValuesToNotBeNull", column="sku", label="sku is set"),
    ])


@asset_check(
    asset=["raw", "wms_return_line_items"], blocking=True, description="BLOCKING: every returned unit's state is WaitingToBeProcessed / Missing / Damaged / "
                "Undamaged. An unknown (or missing) grade would silently drop out of the received, "
                "accepted and damaged unit counts every order-line rule compares.",
)
def wms_line_items_known_state(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_line_items_known_state(read_partition(warehouse, "raw.wms_return_line_items", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["raw", "wms_return_line_items"], blocking=False, description="WARN (not blocking): each (return, line item) pair appears once and every unit has a SKU. "
                "core.wms_return_units keeps one row per pair, so duplicates are not double-counted.",
)
def wms_line_items_valid(context: dg.AssetCheckExecutionContext,
                         warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_line_items_valid(read_partition(warehouse, "raw.wms_return_line_items", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- stock adjustments and levels

def check_wms_adjustment_amounts_non_negative(frame: pl.DataFrame) -> CheckOutcome:
    """lost / found / put-in-quarantine / release-from-quarantine amounts are >= 0 (the direction is
    in the field name; a negative amount would flip the net restock)."""
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeBetween", column=column, min_value=0, label=f"{column} >= 0")
        for column in ADJUSTMENT_AMOUNTS
    ])


def check_wms_stocks_unique_sku(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="sku", label="sku is unique"),
    ])


@asset_check(
    asset=["raw", "wms_stock_adjustment_lines"], blocking=False, description="WARN (not blocking): the four amounts of every stock adjustment line are >= 0.",
)
def wms_adjustment_amounts_non_negative(context: dg.AssetCheckExecutionContext,
                                        warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_adjustment_amounts_non_negative(
        read_partition(warehouse, "raw.wms_stock_adjustment_lines", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


@asset_check(
    asset=["raw", "wms_stocks"], blocking=True, description="BLOCKING: one stock level per SKU. A duplicated SKU would duplicate its row in "
                "core.stock_levels and the UNSYNCED_STOCK_ADJUSTMENT discrepancy built on it.",
)
def wms_stocks_unique_sku(context: dg.AssetCheckExecutionContext,
                          warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_stocks_unique_sku(read_partition(warehouse, "raw.wms_stocks", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


asset_checks = [
    wms_returns_unique_reference,
    wms_returns_state_invariants,
    wms_returns_not_after_fetch,
    wms_line_items_known_state,
    wms_line_items_valid,
    wms_adjustment_amounts_non_negative,
    wms_stocks_unique_sku,
]
