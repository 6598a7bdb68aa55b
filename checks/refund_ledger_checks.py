"""Data-quality checks on the raw refund ledger (sources.md section 3).

Known refund status codes (**Decision**): the OMS documents only ``RELEASED`` (paid out) and uses
``APPROVED`` on return messages; a refund goes through creation and approval and may end
cancelled, rejected or failed, so the known set is CREATED, PENDING, APPROVED, RELEASED,
CANCELED, CANCELLED, REJECTED, FAILED. Codes are compared exactly (upper case), as the
canonical layer does (``status_code = 'RELEASED'``): a ``released`` would not count as money
out, which is exactly what this check should surface.
"""

import dagster as dg
import polars as pl

from checks.gx_runner import CheckOutcome, expect, run_expectations, to_check_result
from checks.steps import asset_check
from pipelines.partitions import business_date_of
from pipelines.resources.warehouse import WarehouseResource

def read_ledger_lines(warehouse: WarehouseResource) -> pl.DataFrame:
    """raw.refund_lines: the ledger is stored once, as the latest run read the archive (every
    business date reads those rows), so the checks of any date look at all of it."""
    with warehouse.connection() as con:
        return con.execute("SELECT * FROM raw.refund_lines").pl()


REFUND_STATUS_CODES = ("CREATED", "PENDING", "APPROVED", "RELEASED", "CANCELED", "CANCELLED", "REJECTED", "FAILED")


def check_refund_lines_unique_credit_note_line(frame: pl.DataFrame) -> CheckOutcome:
    """One row per (credit note version, order line). raw.refund_lines keeps every version of a
    credit note, one per ``version_date`` (the reconciliation takes the latest dated <= T, which
    must be unambiguous); a frame without version columns is checked per credit note."""
    if "version_date" in frame.columns:
        columns = ["credit_note_number", "version_date", "order_line_reference"]
    else:
        columns = ["credit_note_number", "order_line_reference"]
    return run_expectations(frame, [
        expect("ExpectCompoundColumnsToBeUnique", column_list=columns, label=f"({', '.join(columns)}) is unique"),
    ])


def check_refund_lines_amount_valid(frame: pl.DataFrame) -> CheckOutcome:
    """refunded_gross is set, a finite number (text is parsed, as a reader of the raw message
    would) and >= 0."""
    raw = pl.col("refunded_gross")
    text_typed = frame.schema.get("refunded_gross") in (pl.Utf8, pl.String)
    number = (raw.str.strip_chars() if text_typed else raw).cast(pl.Float64, strict=False)
    frame = frame.with_columns(_refunded_gross_number=pl.when(number.is_finite()).then(number))
    frame = frame.with_columns(
        _refunded_gross_parses=raw.is_null() | pl.col("_refunded_gross_number").is_not_null())
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="refunded_gross", label="refunded_gross is set"),
        expect("ExpectColumnValuesToBeInSet", column="_refunded_gross_parses", value_set=[True],
               label="refunded_gross is a number"),
        expect("ExpectColumnValuesToBeBetween", column="_refunded_gross_number", min_value=0,
               label="refunded_gross >= 0"),
    ])


def check_refund_lines_known_status(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="status_code", label="status_code is set"),
        expect("ExpectColumnValuesToBeInSet", column="status_code", value_set=list(REFUND_STATUS_CODES),
               label=f"status_code is one of {'/'.join(REFUND_STATUS_CODES)}"),
    ])


@asset_check(
    asset=["raw", "refund_lines"], blocking=True, description="BLOCKING: one row per (credit note, version date, order line). A redelivered message "
                "loaded twice, or two versions of one credit note with the same date, would double-count the "
                "refund or make its state at T ambiguous, and raise false DUPLICATE_REFUND / OVER_REFUND.",
)
def refund_lines_unique_credit_note_line(context: dg.AssetCheckExecutionContext,
                                         warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_refund_lines_unique_credit_note_line(read_ledger_lines(warehouse))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["raw", "refund_lines"], blocking=True, description="BLOCKING: refunded_gross is set, numeric and >= 0. Every money rule sums it; a missing "
                "or negative amount would understate refunds.",
)
def refund_lines_amount_valid(context: dg.AssetCheckExecutionContext,
                              warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_refund_lines_amount_valid(read_ledger_lines(warehouse))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["raw", "refund_lines"], blocking=False, description="WARN (not blocking): status_code is set and one of CREATED / PENDING / APPROVED / "
                "RELEASED / CANCELED / CANCELLED / REJECTED / FAILED (exact case). Only RELEASED "
                "counts as money out; an unknown code is treated as not paid.",
)
def refund_lines_known_status(context: dg.AssetCheckExecutionContext,
                              warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_refund_lines_known_status(read_ledger_lines(warehouse))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


asset_checks = [
    refund_lines_unique_credit_note_line,
    refund_lines_amount_valid,
    refund_lines_known_status,
]
