"""Data-quality checks on the raw storefront (OpenCart) tables (sources.md section 2).

The tables are versions (change capture), so each check reads what the business date's fetch
stored, in DuckDB, never a whole table: the uniqueness checks the keys in force at the fetch
(one column), the validity checks the versions that fetch wrote (rows new or changed that day;
on a quiet day, none).

Status and action names are compared with the configured maps (``rma_status_map`` /
``rma_action_map`` of the configuration file, whose keys are lower-case names) after trimming
and lower-casing, as the canonical layer does. The pure ``check_<name>`` functions take the
known names as arguments (default: the project's default configuration).
"""
from datetime import date
from typing import Iterable

import dagster as dg
import polars as pl

from checks.gx_runner import CheckOutcome, expect, run_expectations, to_check_result
from pipelines.config import load_config
from checks.steps import asset_check
from pipelines.partitions import business_date_of
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource


def read_fetch(warehouse: WarehouseResource, table: str, business_date: date,
               columns: Iterable[str] | None = None, *, written: bool = False) -> pl.DataFrame:
    """The rows of a raw storefront table in force at the business date's fetch, as polars;
    ``written``: only those that came into force since the fetch before it (what that run wrote,
    also when the date was run again)."""
    cols = ", ".join(f"v.{c}" for c in columns) if columns else "v.* EXCLUDE (valid_from, valid_to, row_hash)"
    where = "v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at)"
    if written:  # since the fetch before this one (a rerun's versions keep their first fetch time)
        where += (" AND v.valid_from > coalesce((SELECT max(p.fetched_at) FROM state.storefront_fetches p "
                  "WHERE p.fetched_at < f.fetched_at), TIMESTAMP '0001-01-01')")
    with warehouse.connection() as con:
        return con.execute(f"SELECT {cols} FROM {table} v JOIN state.storefront_fetches f "
                           f"ON f.business_date = $d WHERE {where}", {"d": business_date}).pl()


def _names(names: Iterable[str] | None, which: str) -> list[str]:
    if names is None:
        cfg = load_config()
        names = cfg.rma_status_map if which == "status" else cfg.rma_action_map
    return sorted({str(n).strip().lower() for n in names})


def _name_key(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Utf8).str.strip_chars().str.to_lowercase()


# --------------------------------------------------------------------------- raw/oc_returns

def check_oc_returns_unique_id(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="return_id", label="return_id is unique"),
    ])


def check_oc_returns_valid(frame: pl.DataFrame, status_names: Iterable[str] | None = None,
                           action_names: Iterable[str] | None = None) -> CheckOutcome:
    """quantity >= 1; the status name is set and known; the action name, when set, is known
    (no action yet is OpenCart's default for a new return)."""
    statuses, actions = _names(status_names, "status"), _names(action_names, "action")
    frame = frame.with_columns(_status_key=_name_key("return_status_name"),
                               _action_key=_name_key("return_action_name"))
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="quantity", label="quantity is set"),
        expect("ExpectColumnValuesToBeBetween", column="quantity", min_value=1, label="quantity >= 1"),
        expect("ExpectColumnValuesToNotBeNull", column="return_status_name", label="status name is set"),
        expect("ExpectColumnValuesToBeInSet", column="_status_key", value_set=statuses,
               label="status name is in rma_status_map"),
        expect("ExpectColumnValuesToBeInSet", column="_action_key", value_set=actions,
               label="action name is in rma_action_map"),
    ])


@asset_check(
    asset=["raw", "oc_returns"], blocking=True, description="BLOCKING: return_id (the RMA number RMA-<id>) is unique. A duplicate would make two "
                "RMA lines of one return and double its requested units.",
)
def oc_returns_unique_id(context: dg.AssetCheckExecutionContext,
                         warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_oc_returns_unique_id(read_fetch(warehouse, "raw.oc_returns", d, ["return_id"]))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["raw", "oc_returns"], blocking=False, description="WARN (not blocking), on the rows new or changed at the date's fetch: quantity >= 1, and the status and action names are known to the "
                "configured maps (case-insensitive). An RMA with an unknown status or action is loaded, "
                "not dropped: it still matches its warehouse return and counts as requested, and only the "
                "rules that need its canonical status (RMA_NOT_RECEIVED, STATUS_MISMATCH) or action "
                "(RECEIVED_NOT_REFUNDED) skip it. Failing rows name the RMA: add the name to the map.",
)
def oc_returns_valid(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                     recon_config: ReconConfigResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    cfg = recon_config.load()
    outcome = check_oc_returns_valid(read_fetch(warehouse, "raw.oc_returns", d, written=True),
                                     cfg.rma_status_map, cfg.rma_action_map)
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- raw/oc_return_history

def check_oc_return_history_known_status(frame: pl.DataFrame,
                                         status_names: Iterable[str] | None = None) -> CheckOutcome:
    """Every status change names a status of the configured map (the RMA status as of T comes
    from this history)."""
    statuses = _names(status_names, "status")
    frame = frame.with_columns(_status_key=_name_key("return_status_name"))
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="return_status_name", label="status name is set"),
        expect("ExpectColumnValuesToBeInSet", column="_status_key", value_set=statuses,
               label="status name is in rma_status_map"),
    ])


@asset_check(
    asset=["raw", "oc_return_history"], blocking=False, description="WARN (not blocking), on the rows new or changed at the date's fetch: every status change of the RMA history names a status known to "
                "rma_status_map (case-insensitive). An unknown one is loaded, not dropped (dropping it "
                "would silently move the RMA's status back to the previous change): the RMA's status "
                "from that change on is unknown and the status rules skip it.",
)
def oc_return_history_known_status(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource,
                                   recon_config: ReconConfigResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_oc_return_history_known_status(
        read_fetch(warehouse, "raw.oc_return_history", d, written=True),
                                                   recon_config.load().rma_status_map)
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


# --------------------------------------------------------------------------- raw/oc_order_lines

def check_oc_order_lines_unique_id(frame: pl.DataFrame) -> CheckOutcome:
    return run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="order_product_id", label="order_product_id is unique"),
    ])


def check_oc_order_lines_valid(frame: pl.DataFrame) -> CheckOutcome:
    """Per-unit price and tax are set and >= 0; quantity is set and >= 1."""
    return run_expectations(frame, [
        expect("ExpectColumnValuesToNotBeNull", column="price", label="price is set"),
        expect("ExpectColumnValuesToBeBetween", column="price", min_value=0, label="price >= 0"),
        expect("ExpectColumnValuesToNotBeNull", column="tax", label="tax is set"),
        expect("ExpectColumnValuesToBeBetween", column="tax", min_value=0, label="tax >= 0"),
        expect("ExpectColumnValuesToNotBeNull", column="quantity", label="quantity is set"),
        expect("ExpectColumnValuesToBeBetween", column="quantity", min_value=1, label="quantity >= 1"),
    ])


@asset_check(
    asset=["raw", "oc_order_lines"], blocking=True, description="BLOCKING: order_product_id (the order line every refund and RMA points at) is unique. "
                "A duplicate would double the line's refunds and units in the joins.",
)
def oc_order_lines_unique_id(context: dg.AssetCheckExecutionContext,
                             warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_oc_order_lines_unique_id(read_fetch(warehouse, "raw.oc_order_lines", d, ["order_product_id"]))
    return to_check_result(outcome, blocking=True, business_date=d.isoformat())


@asset_check(
    asset=["raw", "oc_order_lines"], blocking=False, description="WARN (not blocking), on the rows new or changed at the date's fetch: unit price and tax are set and >= 0, quantity is set and >= 1. "
                "core.order_lines has its own blocking check on the resulting unit gross.",
)
def oc_order_lines_valid(context: dg.AssetCheckExecutionContext,
                         warehouse: WarehouseResource) -> dg.AssetCheckResult:
    d = business_date_of(context)
    outcome = check_oc_order_lines_valid(read_fetch(warehouse, "raw.oc_order_lines", d, written=True))
    return to_check_result(outcome, blocking=False, business_date=d.isoformat())


asset_checks = [
    oc_returns_unique_id,
    oc_returns_valid,
    oc_return_history_known_status,
    oc_order_lines_unique_id,
    oc_order_lines_valid,
]
