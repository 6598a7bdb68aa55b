"""Key and value checks for the tables the other check modules do not cover, declared as data:
one ``TableCheck`` per check (asset, table, expectations, blocking or not). Each becomes a pure
function (``CHECKS[name].run(frame)``, for tests) and a Dagster ``@asset_check``.
"""
from dataclasses import dataclass
from typing import Callable

import dagster as dg
import polars as pl

from checks.gx_runner import CheckOutcome, Expect, expect, read_partition, run_expectations, to_check_result
from checks.steps import asset_check
from pipelines.partitions import business_date_of
from pipelines.resources.warehouse import WarehouseResource

UNIT_STATES = ["WaitingToBeProcessed", "Missing", "Damaged", "Undamaged"]
WMS_STATES = ["ReturnCreated", "ArrivedToWarehouse", "Completed"]
PROVIDER_STATUSES = ["pending", "requires_action", "succeeded", "failed", "canceled"]


@dataclass(frozen=True)
class TableCheck:
    name: str
    asset: tuple[str, str]
    blocking: bool
    description: str
    expectations: Callable[[], list[Expect]]
    prepare: Callable[[pl.DataFrame], pl.DataFrame] = lambda f: f

    @property
    def table(self) -> str:
        return ".".join(self.asset)

    def run(self, frame: pl.DataFrame) -> CheckOutcome:
        return run_expectations(self.prepare(frame), self.expectations())


def _pair_key(a: str, b: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda f: f.with_columns(_key=pl.concat_str([pl.col(a), pl.col(b)], separator="|"))


TABLE_CHECKS = [
    TableCheck("oc_orders_valid", ("raw", "oc_orders"), True,
               "BLOCKING: order_id unique, currency set and currency_value > 0. Every unit gross is "
               "(price + tax) x currency_value: a missing or zero rate makes every amount wrong.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="order_id", label="order_id is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="currency_code", label="currency is set"),
                        expect("ExpectColumnValuesToBeBetween", column="currency_value", min_value=0,
                               strict_min=True, label="currency_value > 0")]),
    TableCheck("oc_products_valid", ("raw", "oc_products"), False,
               "WARN: product_id unique and stock quantity set (UNSYNCED_STOCK_ADJUSTMENT compares it).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="product_id", label="product_id is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="quantity", label="quantity is set")]),
    TableCheck("wms_stock_adjustments_valid", ("raw", "wms_stock_adjustments"), False,
               "WARN: transaction_number unique within a fetch, completedAt set (the canonical layer "
               "keeps each transaction once, so a repeat cannot double a restock) and not after the "
               "time it was fetched (the WMS clock ahead or a mistyped year: the incremental watermark "
               "is capped at the fetch time, so polling goes on; the failing rows are listed).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="transaction_number",
                               label="transaction_number is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="completed_at", label="completed_at is set"),
                        expect("ExpectColumnPairValuesAToBeGreaterThanB", column_A="fetched_at",
                               column_B="completed_at", or_equal=True, ignore_row_if="either_value_is_missing",
                               label="completed_at <= fetched_at (no clock skew)")]),
    TableCheck("wms_probed_returns_valid", ("raw", "wms_probed_returns"), False,
               "WARN: returns found by tracking probes have a known state and a reference.",
               lambda: [expect("ExpectColumnValuesToNotBeNull", column="return_reference", label="reference is set"),
                        expect("ExpectColumnValuesToBeInSet", column="state", value_set=WMS_STATES,
                               label="state is a WMS state")]),
    TableCheck("wms_probed_line_items_known_state", ("raw", "wms_probed_return_line_items"), True,
               "BLOCKING: every probed unit has a known grade (unknown grades would corrupt unit counts).",
               lambda: [expect("ExpectColumnValuesToBeInSet", column="state", value_set=UNIT_STATES,
                               label="state is a unit grade"),
                        expect("ExpectColumnValuesToNotBeNull", column="state", label="state is set")]),
    TableCheck("wms_tracking_probe_log_valid", ("raw", "wms_tracking_probe_log"), False,
               "WARN: each RMA's tracking number is probed at most once per run.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="_key", label="RMA x tracking is unique"),
                        expect("ExpectColumnValuesToBeBetween", column="returns_found", min_value=0,
                               label="returns_found >= 0")],
               _pair_key("rma_reference", "tracking_id")),
    TableCheck("wms_return_units_valid", ("core", "wms_return_units"), True,
               "BLOCKING: one row per unit (return x line item) with a known grade: received, accepted "
               "and damaged units are counted from this table.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="_key", label="return x line item is unique"),
                        expect("ExpectColumnValuesToBeInSet", column="state", value_set=UNIT_STATES,
                               label="state is a unit grade")],
               _pair_key("return_reference", "line_item_reference")),
    TableCheck("stock_adjustment_lines_unique", ("core", "stock_adjustment_lines"), True,
               "BLOCKING: one row per adjustment x SKU; a repeat would double a restock in RESTOCK_MISMATCH "
               "and UNSYNCED_STOCK_ADJUSTMENT.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="_key", label="transaction x SKU is unique")],
               _pair_key("transaction_number", "sku")),
    TableCheck("discrepancy_detections_unique_id", ("recon", "discrepancy_detections"), True,
               "BLOCKING: each rule yields at most one row per grain per run: one detection per "
               "discrepancy_id and business date. Two rows under one id would double its amount at risk "
               "and make the register (recon.discrepancies) pick one of them at random.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="discrepancy_id",
                               label="discrepancy_id is unique on the business date"),
                        expect("ExpectColumnValuesToNotBeNull", column="discrepancy_id",
                               label="discrepancy_id is set")]),
    TableCheck("payment_refunds_valid", ("raw", "payment_refunds"), True,
               "BLOCKING: the versions the run wrote have one row per provider refund, an exact amount, a "
               "currency and one of the provider's statuses (only succeeded refunds count as paid).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="refund_id", label="refund_id is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="amount", label="amount is set"),
                        expect("ExpectColumnValuesToNotBeNull", column="currency", label="currency is set"),
                        expect("ExpectColumnValuesToBeInSet", column="status", value_set=PROVIDER_STATUSES,
                               label="status is a provider status")]),
    TableCheck("rma_platform_orders_valid", ("raw", "rma_platform_orders"), True,
               "BLOCKING: the versions the run wrote hold each RMA order version (id, updatedAt) once, with a "
               "return reference (the key a pre-authorised WMS return carries).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="_key", label="id x updatedAt is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="return_reference",
                               label="return reference is set")],
               lambda f: f.with_columns(_key=pl.concat_str([pl.col("rma_id"), pl.col("updated_at").cast(pl.Utf8)],
                                                            separator="|"))),
    TableCheck("rma_platform_orders_no_anomaly", ("raw", "rma_platform_orders"), False,
               "WARN: an RMA order in processing status ANOMALY needs manual intervention on the platform "
               "(it counts as AUTHORIZED meanwhile, sources.md 5.1); the failing rows name them.",
               lambda: [expect("ExpectColumnValuesToNotBeInSet", column="processing_status", value_set=["ANOMALY"],
                               label="no RMA order in ANOMALY")]),
    TableCheck("rma_platform_lines_valid", ("raw", "rma_platform_lines"), True,
               "BLOCKING: each line of an RMA order version once, with a SKU and a positive quantity (requested "
               "units are counted from it).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="_key", label="order version x line is unique"),
                        expect("ExpectColumnValuesToBeBetween", column="quantity", min_value=1,
                               label="quantity >= 1")],
               lambda f: f.with_columns(_key=pl.concat_str([pl.col("rma_id"), pl.col("updated_at").cast(pl.Utf8),
                                                            pl.col("line_id")], separator="|"))),
    TableCheck("rma_platform_status_history_valid", ("raw", "rma_platform_status_history"), False,
               "WARN: every status change names one of the four dimensions (the status at T is read per dimension).",
               lambda: [expect("ExpectColumnValuesToBeInSet", column="dimension",
                               value_set=["PROCESSING", "DELIVERY", "FINANCIAL", "FULFILLMENT"],
                               label="dimension is one of the four")]),
    TableCheck("credit_notes_unique", ("core", "credit_notes"), True,
               "BLOCKING: one row per credit note; a repeat would double what the shop owes in "
               "PAYMENT_AMOUNT_MISMATCH and CREDIT_NOTE_NOT_PAID.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="credit_note_number",
                               label="credit_note_number is unique")]),
    TableCheck("provider_refunds_unique", ("core", "provider_refunds"), True,
               "BLOCKING: one row per provider refund; a repeat would count a payout twice.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="refund_id", label="refund_id is unique")]),
    TableCheck("payment_matches_one_note_per_refund", ("recon", "payment_matches"), True,
               "BLOCKING: each provider refund is linked to at most one credit note (reconciliation.md).",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="refund_id", label="refund_id is unique"),
                        expect("ExpectColumnValuesToBeInSet", column="method", value_set=["reference", "order_amount"],
                               label="method is reference or order_amount")]),
    TableCheck("stock_levels_unique_sku", ("core", "stock_levels"), True,
               "BLOCKING: one row per SKU; a repeat would double UNSYNCED_STOCK_ADJUSTMENT.",
               lambda: [expect("ExpectColumnValuesToBeUnique", column="sku", label="sku is unique"),
                        expect("ExpectColumnValuesToNotBeNull", column="sku", label="sku is set")]),
]
CHECKS = {c.name: c for c in TABLE_CHECKS}


def _build(check: TableCheck) -> dg.AssetChecksDefinition:
    @asset_check(asset=list(check.asset), name=check.name, blocking=check.blocking, description=check.description)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
        d = business_date_of(context)
        outcome = check.run(read_partition(warehouse, check.table, d))
        return to_check_result(outcome, blocking=check.blocking, business_date=d.isoformat())

    return _check


asset_checks = [_build(c) for c in TABLE_CHECKS]
