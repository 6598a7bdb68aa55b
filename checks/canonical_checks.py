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
from pipelines.partitions import WAREHOUSE_POOL, business_date_of, daily_partitions
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
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="order_line_reference",
               label="order_line_reference is unique"),
    ])


def check_order_lines_unit_gross_positive(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="unit_gross", label="unit_gross is set"),
        expect("ExpectColumnValuesToBeBetween", column="unit_gross", min_value=0, strict_min=False,
               label="unit_gross >= 0"),
    ])


@dg.asset_check(
    asset=["core", "order_lines"], blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    description="BLOCKING: one row per order line (order_product_id). A duplicate would double the "
                "line's refunds, RMAs and units in every order-line rule.",
)
def order_lines_unique_reference(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_order_lines_unique_reference(read_partition(warehouse, "core.order_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@dg.asset_check(
    asset=["core", "order_lines"], blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    description="BLOCKING: unit_gross ((price + tax) x currency rate) is set and not negative. Refunded "
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

def check_refund_lines_order_line_coverage(refund_lines: pl.DataFrame, order_lines: pl.DataFrame,
                                           threshold: float = DEFAULT_MIN_COVERAGE) -> CheckOutcome:
    """Share of money-out refund lines (not SHIPPING) whose order line (order reference + order
    line reference, as ORPHAN_REFUND joins) is in core.order_lines >= threshold. The failing rows
    are a sample of the refund lines whose order line is missing."""
    judged = refund_lines.filter(pl.col("is_money_out").fill_null(False)
                                 & (pl.col("order_line_reference") != "SHIPPING"))
    known = order_lines.select(_key("order_reference", "order_line_reference").alias("k"))["k"]
    return _coverage(judged, known, _key("order_reference", "order_line_reference"), threshold,
                     f"money-out refund lines whose order line exists (at least {threshold:.0%})", "refund_lines")


@dg.asset_check(
    asset=["core", "refund_lines"], blocking=False, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    additional_deps=[["core", "order_lines"]],
    description="WARN (not blocking): at least 95% (thresholds.min_reference_coverage) of the money-out "
                "refund lines (SHIPPING excluded) name an order line present in core.order_lines. "
                "Metadata: the share and a sample of the refund lines whose order line is missing.",
)
def refund_lines_order_line_coverage(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                                     recon_config: ReconConfigResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_refund_lines_order_line_coverage(
        read_partition(warehouse, "core.refund_lines", d),
        read_partition(warehouse, "core.order_lines", d, ["order_reference", "order_line_reference"]),
        min_coverage(recon_config))
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


@dg.asset_check(
    asset=["core", "wms_returns"], blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    description="BLOCKING: one row per WMS return. A duplicate would double its units in the received / "
                "accepted / damaged counts and its matches.",
)
def wms_returns_unique_reference(context: dg.AssetCheckExecutionContext,
                                 warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_wms_returns_unique_reference(read_partition(warehouse, "core.wms_returns", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@dg.asset_check(
    asset=["core", "wms_returns"], blocking=False, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    additional_deps=[["core", "order_lines"]],
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
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="status", label="status is set"),
        expect("ExpectColumnValuesToBeInSet", column="status", value_set=list(CANONICAL_STATUSES),
               label=f"status is one of {'/'.join(CANONICAL_STATUSES)}"),
    ])


@dg.asset_check(
    asset=["core", "rma_lines"], blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    description="BLOCKING: one row per RMA line (RMA-<id>). A duplicate would double its requested units.",
)
def rma_lines_unique_reference(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_rma_lines_unique_reference(read_partition(warehouse, "core.rma_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@dg.asset_check(
    asset=["core", "rma_lines"], blocking=True, partitions_def=daily_partitions, pool=WAREHOUSE_POOL,
    description="BLOCKING: every RMA line's status as of T is a canonical status (REQUESTED / AUTHORIZED / "
                "COMPLETED / REJECTED / CANCELED). A missing or other value (a storefront status the map "
                "does not know) would drop the RMA from the requested units and the status rules.",
)
def rma_lines_canonical_status(context: dg.AssetCheckExecutionContext,
                               warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_rma_lines_canonical_status(read_partition(warehouse, "core.rma_lines", d))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


asset_checks = [
    order_lines_unique_reference,
    order_lines_unit_gross_positive,
    refund_lines_order_line_coverage,
    wms_returns_unique_reference,
    wms_returns_order_coverage,
    rma_lines_unique_reference,
    rma_lines_canonical_status,
]
