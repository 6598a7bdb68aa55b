"""Data-quality checks on the canonical tables (schema ``core``, reconciliation.md).

Key uniqueness and the enums the rules count with are blocking: the reconciliation assets would
otherwise compute wrong numbers. Referential coverage (how many refunds / WMS returns point at an
order line the storefront has) warns below a threshold: single misses are what ORPHAN_REFUND and
ORPHAN_WMS_RETURN report, a low share means a source is missing data. The threshold is
``thresholds.min_reference_coverage`` of the configuration, default 0.95.
"""

import dagster as dg
import polars as pl

from checks.gx_runner import CheckOutcome, expect, read_partition, run_expectations, to_check_result
from pipelines.config import CANONICAL_STATUSES
from checks.steps import asset_check
from pipelines.partitions import business_date_of
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource

DEFAULT_MIN_COVERAGE = 0.95
COVERAGE_THRESHOLD_KEY = "min_reference_coverage"


def min_coverage(recon_config: ReconConfigResource) -> float:
    value = recon_config.load().thresholds.get(COVERAGE_THRESHOLD_KEY, DEFAULT_MIN_COVERAGE)
    return min(max(float(value), 0.0), 1.0)


def _key(*columns: str) -> pl.Expr:
    """A text key over several columns (null when any part is null)."""
    return pl.concat_str([pl.col(c).cast(pl.Utf8) for c in columns], separator="\x1f")


def _coverage(frame: pl.DataFrame, known: pl.Series, key: pl.Expr, threshold: float, label: str,
              what: str) -> CheckOutcome:
    frame = frame.with_columns(_reference_exists=key.is_in(known.drop_nulls().implode()).fill_null(False))
    judged = frame.height
    missing = judged - int(frame["_reference_exists"].sum()) if judged else 0
    share = 1.0 if judged == 0 else (judged - missing) / judged
    return run_expectations(
        frame,
        [expect("ExpectColumnValuesToBeInSet", column="_reference_exists", value_set=[True], mostly=threshold,
                label=label)],
        extra={"coverage_share": round(share, 6), "coverage_threshold": threshold,
               f"{what}_checked": judged, f"{what}_missing": missing},
    )


# --------------------------------------------------------------------------- core/order_lines

def check_order_lines_unique_reference(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame.with_columns(_key=_key("order_reference", "sku_key")), [
        expect("ExpectColumnValuesToBeUnique", column="_key", label="order x SKU is unique"),
    ])


def check_order_lines_unit_gross_positive(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="unit_gross", label="unit_gross is set"),
        expect("ExpectColumnValuesToBeBetween", column="unit_gross", min_value=0, strict_min=False,
               label="unit_gross >= 0"),
    ])


@asset_check(
    asset=["core", "order_lines"], blocking=True, description="BLOCKING: one row per order line of the rules (order x SKU; option variants are one line). "
                "A duplicate would double the line's refunds, RMAs and units in every order-line rule.",
)
def order_lines_unique_reference(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_order_lines_unique_reference(read_partition(warehouse, "core.order_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["core", "order_lines"], blocking=True, description="BLOCKING: unit_gross ((price + tax) x currency rate) is set and not negative. Refunded "
                "units are refunded amount / unit gross and every amount at risk is units x unit gross; a "
                "missing or negative unit gross makes them meaningless (e.g. an order without its currency "
                "rate). Zero is allowed: free items (gifts) exist, and the rules count no units for them.",
)
def order_lines_unit_gross_positive(context: dg.AssetCheckExecutionContext,
                                    warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_order_lines_unit_gross_positive(read_partition(warehouse, "core.order_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


# --------------------------------------------------------------------------- core/refund_lines

def check_refund_lines_order_line_coverage(refund_lines: pl.DataFrame,
                                           threshold: float = DEFAULT_MIN_COVERAGE) -> CheckOutcome:
    """Share of money-out refund lines (not SHIPPING) whose order line exists (an oc_order_product
    row of that order, as ORPHAN_REFUND reads it: ``sku_key`` set) >= threshold. The failing rows
    are a sample of the refund lines whose order line is missing."""
    judged = refund_lines.filter(pl.col("is_money_out").fill_null(False)
                                 & (pl.col("order_line_reference") != "SHIPPING"))
    return _coverage(judged, pl.Series([True]), pl.col("sku_key").is_not_null(), threshold,
                     f"money-out refund lines whose order line exists (at least {threshold:.0%})", "refund_lines")


@asset_check(
    asset=["core", "refund_lines"], blocking=False, description="WARN (not blocking): at least 95% (thresholds.min_reference_coverage) of the money-out "
                "refund lines (SHIPPING excluded) name an order line the storefront has. "
                "Metadata: the share and a sample of the refund lines whose order line is missing.",
)
def refund_lines_order_line_coverage(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                                     recon_config: ReconConfigResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_refund_lines_order_line_coverage(
        read_partition(warehouse, "core.refund_lines", d), min_coverage(recon_config))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- core/wms_returns

def check_wms_returns_unique_reference(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="return_reference", label="return_reference is unique"),
    ])


def check_wms_returns_order_coverage(wms_returns: pl.DataFrame, order_lines: pl.DataFrame,
                                     threshold: float = DEFAULT_MIN_COVERAGE) -> CheckOutcome:
    """Share of WMS returns whose order reference is an order of core.order_lines >= threshold
    (a return without an order reference counts as missing)."""
    known = order_lines.select(pl.col("order_reference").cast(pl.Utf8))["order_reference"].unique()
    return _coverage(wms_returns, known, pl.col("order_reference").cast(pl.Utf8), threshold,
                     f"WMS returns whose order exists (at least {threshold:.0%})", "wms_returns")


@asset_check(
    asset=["core", "wms_returns"], blocking=True, description="BLOCKING: one row per WMS return. A duplicate would double its units in the received / "
                "accepted / damaged counts and its matches.",
)
def wms_returns_unique_reference(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_unique_reference(read_partition(warehouse, "core.wms_returns", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["core", "wms_returns"], blocking=False, additional_deps=[["core", "order_lines"]],
    description="WARN (not blocking): at least 95% (thresholds.min_reference_coverage) of the WMS returns "
                "name an order (salesOrderReferenceNumber) present in core.order_lines. Metadata: the "
                "share and a sample of the returns whose order is unknown.",
)
def wms_returns_order_coverage(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                               recon_config: ReconConfigResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_order_coverage(
        read_partition(warehouse, "core.wms_returns", d),
        read_partition(warehouse, "core.order_lines", d, ["order_reference"]),
        min_coverage(recon_config))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- core/rma_lines

def check_rma_lines_unique_reference(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="rma_reference", label="rma_reference is unique"),
    ])


def check_rma_lines_canonical_status(frame: pl.DataFrame) -> CheckOutcome:
    frame = frame.select("rma_reference", "status_name", "status", *(c for c in ("action_name", "action_known")
                                                                      if c in frame.columns))
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="status", label="status is set"),
        expect("ExpectColumnValuesToBeInSet", column="status", value_set=list(CANONICAL_STATUSES),
               label=f"status is one of {'/'.join(CANONICAL_STATUSES)}"),
    ])


@asset_check(
    asset=["core", "rma_lines"], blocking=True, description="BLOCKING: one row per RMA line (RMA-<id>). A duplicate would double its requested units.",
)
def rma_lines_unique_reference(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_rma_lines_unique_reference(read_partition(warehouse, "core.rma_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["core", "rma_lines"], blocking=False, description="WARN (not blocking): every RMA line's status as of T maps to a canonical status (REQUESTED / "
                "AUTHORIZED / COMPLETED / REJECTED / CANCELED). An RMA whose storefront status name the map "
                "does not know still matches and counts as requested; only RMA_NOT_RECEIVED and STATUS_MISMATCH "
                "skip it. Failing rows name the RMA and the unknown status: add the name to rma_status_map.",
)
def rma_lines_canonical_status(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_rma_lines_canonical_status(read_partition(warehouse, "core.rma_lines", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


def check_rma_lines_known_action(frame: pl.DataFrame) -> CheckOutcome:
    frame = frame.select("rma_reference", "action_name", "action_known")
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeInSet", column="action_known", value_set=[True],
               label="the action name is in rma_action_map"),
    ])


@asset_check(
    asset=["core", "rma_lines"], blocking=False, description="WARN (not blocking): every RMA's action name maps to a canonical action. An RMA with an "
                "unknown action leaves its order line out of RECEIVED_NOT_REFUNDED (a replacement or credit "
                "would settle it). Failing rows name the RMA and the action: add it to rma_action_map.",
)
def rma_lines_known_action(context: dg.AssetCheckExecutionContext,
                           warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_rma_lines_known_action(
        read_partition(warehouse, "core.rma_lines", d, ["rma_reference", "action_name", "action_known"]))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- core/data_issues

def check_no_unjudged_grains(frame: pl.DataFrame) -> CheckOutcome:
    """Every record that failed validation and names a grain leaves that grain unjudged: the check
    warns with one failing row per such record (source, key, reason, the order / RMA / return)."""
    frame = frame.select("source", "record_key", "reason", "order_reference", "rma_reference",
                         "return_reference").with_columns(_unjudged=pl.lit(True))
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeInSet", column="_unjudged", value_set=[False],
               label="no order, RMA or WMS return is left unjudged by a rejected record"),
    ], extra={"unjudged_orders": frame["order_reference"].drop_nulls().n_unique(),
              "unjudged_rmas": frame["rma_reference"].drop_nulls().n_unique(),
              "unjudged_wms_returns": frame["return_reference"].drop_nulls().n_unique()})


@asset_check(
    asset=["core", "data_issues"], blocking=False, description="WARN (not blocking): records that failed validation (recon.rejects) and name an order, an "
                "RMA or a WMS return. The rules leave those grains unjudged instead of judging them as if the "
                "record did not exist (e.g. a rejected order line never turns its refunds into ORPHAN_REFUND). "
                "Failing rows: the record, its reason and the grain left out; fix the source record.",
)
def data_issues_unjudged_grains(context: dg.AssetCheckExecutionContext,
                                warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_no_unjudged_grains(read_partition(warehouse, "core.data_issues", d))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


asset_checks = [
    order_lines_unique_reference,
    order_lines_unit_gross_positive,
    refund_lines_order_line_coverage,
    wms_returns_unique_reference,
    wms_returns_order_coverage,
    rma_lines_unique_reference,
    rma_lines_canonical_status,
    rma_lines_known_action,
    data_issues_unjudged_grains,
]
