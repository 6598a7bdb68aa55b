"""Data-quality checks: each pure check function fails on a frame built to break it (with the
failing rows in the sample) and passes on a good one; a wrapped asset check runs against a real
DuckDB file through Dagster. Great Expectations' context is shared by the whole process."""
from datetime import datetime, timedelta
from decimal import Decimal

import dagster as dg
import polars as pl
import pytest

from checks import all_checks, canonical_checks as cc
from checks import refund_ledger_checks as rc, storefront_checks as sc, wms_checks as wc
from checks.gx_runner import SAMPLE_SIZE, expect, run_expectations
from pipelines.partitions import daily_partitions
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.warehouse import WarehouseResource, connect
from pipelines.settings import DEFAULT_CONFIG_PATH

PARTITION = "2026-03-31"
D = datetime(2026, 3, 31).date()
T0 = datetime(2026, 3, 20, 10, 0)
T1 = datetime(2026, 3, 25, 10, 0)
T2 = datetime(2026, 3, 28, 10, 0)


def failing(outcome, column, *values):
    """The sample holds exactly the rows whose ``column`` is one of ``values``."""
    assert not outcome.success, outcome.summary()
    got = sorted(str(r[column]) for r in outcome.failing_rows)
    assert got == sorted(str(v) for v in values), outcome.failing_rows
    assert outcome.unexpected_count == len(values)
    assert all(r["failed_expectations"] for r in outcome.failing_rows)
    return outcome


def passing(outcome):
    assert outcome.success, outcome.summary()
    assert outcome.failing_rows == [] and outcome.unexpected_count == 0
    return outcome


# --------------------------------------------------------------------------- gx_runner

def test_runner_reports_each_expectation_and_a_bounded_sample():
    frame = pl.DataFrame({"k": list(range(30)) + [0], "v": [-1] * 31})
    outcome = run_expectations(frame, [
        expect("ExpectColumnValuesToBeUnique", column="k", label="k unique"),
        expect("ExpectColumnValuesToBeBetween", column="v", min_value=0, label="v >= 0"),
    ])
    assert not outcome.success and outcome.rows_checked == 31 and outcome.unexpected_count == 31
    assert [(e.label, e.success, e.unexpected_count) for e in outcome.expectations] == [
        ("k unique", False, 2), ("v >= 0", False, 31)]
    assert len(outcome.failing_rows) == SAMPLE_SIZE
    # both kinds of failure show in the sample, not just the first rows
    assert any("k unique" in r["failed_expectations"] for r in outcome.failing_rows)


def test_runner_converts_only_the_checked_columns_but_samples_whole_rows():
    from checks.gx_runner import _checked_columns

    # a column pandas cannot take as is would make the whole-frame conversion fail; unchecked, it never goes
    frame = pl.DataFrame({"sku": ["A", "A", "B"], "wide": [[1], [2, 3], []], "note": ["x", "y", "z"]})
    specs = [expect("ExpectColumnValuesToBeUnique", column="sku", label="sku is unique")]
    assert _checked_columns(frame, specs).columns == ["sku"]
    outcome = run_expectations(frame, specs)
    assert not outcome.success and outcome.unexpected_count == 2
    assert [r["note"] for r in outcome.failing_rows] == ["x", "y"]  # the sample keeps every column
    table_level = [expect("ExpectTableRowCountToBeBetween", min_value=1, label="rows")]
    assert _checked_columns(frame, table_level).columns == frame.columns


def test_runner_turns_a_missing_column_into_a_failure_not_a_crash():
    outcome = run_expectations(pl.DataFrame({"a": [1]}), [expect("ExpectColumnValuesToNotBeNull", column="nope")])
    assert not outcome.success
    assert "nope" in outcome.expectations[0].error


def test_checks_module_does_not_import_great_expectations():
    import subprocess
    import sys

    code = "import sys, checks; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_definitions_hold_every_check_with_its_blocking_choice():
    from pipelines.definitions import defs
    keys = {(c.asset_key.to_user_string(), c.name) for c in defs.asset_checks for c in c.check_specs}
    assert len(keys) == len(all_checks)
    blocking = {(s.asset_key.to_user_string(), s.name): s.blocking for c in all_checks for s in c.check_specs}
    assert {(s.asset_key.to_user_string(), s.name): s.blocking
            for c in defs.asset_checks for s in c.check_specs} == blocking
    # every raw and canonical table of the DDL is checked
    import re
    from pipelines.settings import SQL_DIR
    tables = {m.replace(".", "/") for f in (SQL_DIR / "schema").glob("create_*.sql")
              for m in re.findall(r"CREATE TABLE IF NOT EXISTS ((?:raw|core)\.\w+)", f.read_text())}
    assert tables and tables <= {asset for asset, _ in keys}, tables - {asset for asset, _ in keys}
    for check in all_checks:
        for spec in check.check_specs:
            assert spec.description.startswith("BLOCKING" if spec.blocking else "WARN"), spec.name


# --------------------------------------------------------------------------- raw/wms_returns

def wms_return(ref, state="Completed", created=T0, arrived=T1, completed=T2, order="1001"):
    return {"return_reference": ref, "order_reference": order, "state": state,
            "created_at": created, "arrived_at": arrived, "completed_at": completed}


WMS_RETURN_SCHEMA = {"return_reference": pl.Utf8, "order_reference": pl.Utf8, "state": pl.Utf8,
                     "created_at": pl.Datetime("us"), "arrived_at": pl.Datetime("us"),
                     "completed_at": pl.Datetime("us")}


def wms_returns(*rows):
    return pl.DataFrame(list(rows), schema=WMS_RETURN_SCHEMA)


GOOD_WMS_RETURNS = wms_returns(
    wms_return("RMA-1"),
    wms_return("RMA-2", "ArrivedToWarehouse", completed=None),
    wms_return("Return-3", "ReturnCreated", arrived=None, completed=None),
)


def test_wms_returns_unique_reference():
    failing(wc.check_wms_returns_unique_reference(wms_returns(wms_return("RMA-1"), wms_return("RMA-1"),
                                                              wms_return("RMA-2"))),
            "return_reference", "RMA-1", "RMA-1")
    passing(wc.check_wms_returns_unique_reference(GOOD_WMS_RETURNS))


def test_wms_returns_state_invariants():
    bad = wms_returns(
        wms_return("ok"),
        wms_return("created-but-arrived", "ReturnCreated", completed=None),
        wms_return("arrived-without-date", "ArrivedToWarehouse", arrived=None, completed=None),
        wms_return("completed-without-date", "Completed", completed=None),
        wms_return("arrived-before-created", "ArrivedToWarehouse", arrived=T0.replace(day=1), completed=None),
        wms_return("completed-before-arrived", completed=T0),
        wms_return("unknown-state", "Lost"),
    )
    outcome = failing(wc.check_wms_returns_state_invariants(bad), "return_reference",
                      "created-but-arrived", "arrived-without-date", "completed-without-date",
                      "arrived-before-created", "completed-before-arrived", "unknown-state")
    assert {e.label for e in outcome.failed} >= {"created_at <= arrived_at", "arrived_at <= completed_at",
                                                 "state is ReturnCreated / ArrivedToWarehouse / Completed"}
    passing(wc.check_wms_returns_state_invariants(GOOD_WMS_RETURNS))


# --------------------------------------------------------------------------- raw/wms_return_line_items

def line_items(*rows):
    return pl.DataFrame([dict(zip(("return_reference", "line_item_reference", "sku", "state"), r)) for r in rows],
                        schema={"return_reference": pl.Utf8, "line_item_reference": pl.Utf8, "sku": pl.Utf8,
                                "state": pl.Utf8})


GOOD_ITEMS = line_items(("R1", "1", "SKU-A", "Undamaged"), ("R1", "2", "SKU-A", "Damaged"),
                        ("R2", "1", "SKU-B", "Missing"), ("R2", "2", "SKU-B", "WaitingToBeProcessed"))


def test_wms_line_items_known_state():
    failing(wc.check_wms_line_items_known_state(line_items(("R1", "1", "SKU-A", "Undamaged"),
                                                           ("R1", "2", "SKU-A", "Broken"),
                                                           ("R1", "3", "SKU-A", None))),
            "line_item_reference", "2", "3")
    passing(wc.check_wms_line_items_known_state(GOOD_ITEMS))


def test_wms_line_items_valid():
    failing(wc.check_wms_line_items_valid(line_items(("R1", "1", "SKU-A", "Undamaged"),
                                                     ("R1", "1", "SKU-A", "Undamaged"),
                                                     ("R2", "1", "SKU-A", "Undamaged"),
                                                     ("R2", "2", None, "Undamaged"))),
            "line_item_reference", "1", "1", "2")
    passing(wc.check_wms_line_items_valid(GOOD_ITEMS))


# --------------------------------------------------------------------------- stock adjustments and levels

def adjustment_lines(*amounts):
    return pl.DataFrame([{"line_id": f"L{i}", **dict(zip(wc.ADJUSTMENT_AMOUNTS, a))} for i, a in enumerate(amounts)],
                        schema={"line_id": pl.Utf8, **{c: pl.Int32 for c in wc.ADJUSTMENT_AMOUNTS}})


def test_wms_adjustment_amounts_non_negative():
    failing(wc.check_wms_adjustment_amounts_non_negative(adjustment_lines((0, 1, 0, 0), (-1, 0, 0, 0),
                                                                          (0, 0, 0, -2))),
            "line_id", "L1", "L2")
    passing(wc.check_wms_adjustment_amounts_non_negative(adjustment_lines((0, 1, 0, 0), (1, 0, 2, None))))


def test_wms_stocks_unique_sku():
    failing(wc.check_wms_stocks_unique_sku(pl.DataFrame({"sku": ["A", "B", "A"], "available_stock": [1, 2, 3]})),
            "available_stock", 1, 3)
    passing(wc.check_wms_stocks_unique_sku(pl.DataFrame({"sku": ["A", "B"], "available_stock": [1, 2]})))


# --------------------------------------------------------------------------- storefront

OC_RETURN_SCHEMA = {"return_id": pl.Int64, "quantity": pl.Int32, "return_status_name": pl.Utf8,
                    "return_action_name": pl.Utf8}


def oc_returns(*rows):
    return pl.DataFrame([dict(zip(OC_RETURN_SCHEMA, r)) for r in rows], schema=OC_RETURN_SCHEMA)


GOOD_OC_RETURNS = oc_returns((1, 1, "Pending", None), (2, 2, " awaiting PRODUCTS ", "Refunded"),
                             (3, 1, "Complete", "Credit Issued"))


def test_oc_returns_unique_id():
    failing(sc.check_oc_returns_unique_id(oc_returns((1, 1, "Pending", None), (1, 2, "Pending", None),
                                                     (2, 1, "Pending", None))),
            "return_id", 1, 1)
    passing(sc.check_oc_returns_unique_id(GOOD_OC_RETURNS))


def test_oc_returns_valid_against_the_configured_names():
    bad = oc_returns((1, 1, "Pending", None), (2, 0, "Pending", None), (3, 1, "Lost in space", None),
                     (4, 1, "Complete", "Sold on eBay"), (5, 1, None, None), (6, None, "Pending", None))
    outcome = failing(sc.check_oc_returns_valid(bad), "return_id", 2, 3, 4, 5, 6)
    assert {e.label for e in outcome.failed} == {"quantity >= 1", "status name is in rma_status_map",
                                                 "action name is in rma_action_map", "status name is set",
                                                 "quantity is set"}
    passing(sc.check_oc_returns_valid(GOOD_OC_RETURNS))
    # the maps come from the configuration: a shop-specific status becomes known
    passing(sc.check_oc_returns_valid(oc_returns((3, 1, "Lost in space", None)),
                                      status_names=["lost in space"], action_names=["refunded"]))


def test_oc_return_history_known_status():
    schema = {"return_history_id": pl.Int64, "return_status_name": pl.Utf8}
    failing(sc.check_oc_return_history_known_status(
        pl.DataFrame({"return_history_id": [1, 2, 3], "return_status_name": ["Pending", "Teleported", None]},
                     schema=schema)),
        "return_history_id", 2, 3)
    passing(sc.check_oc_return_history_known_status(
        pl.DataFrame({"return_history_id": [1, 2], "return_status_name": ["PENDING", "Cancelled"]}, schema=schema)))


OC_LINE_SCHEMA = {"order_product_id": pl.Int64, "quantity": pl.Int32, "price": pl.Decimal(15, 4),
                  "tax": pl.Decimal(15, 4)}


def oc_lines(*rows):
    return pl.DataFrame([dict(zip(OC_LINE_SCHEMA, (r[0], r[1], *(None if v is None else Decimal(v) for v in r[2:]))))
                         for r in rows], schema=OC_LINE_SCHEMA)


GOOD_OC_LINES = oc_lines((1, 1, "10.00", "1.90"), (2, 3, "0.00", "0.00"))


def test_oc_order_lines_unique_id():
    failing(sc.check_oc_order_lines_unique_id(oc_lines((1, 1, "10", "1"), (1, 2, "10", "1"), (2, 1, "5", "1"))),
            "quantity", 1, 2)
    passing(sc.check_oc_order_lines_unique_id(GOOD_OC_LINES))


def test_oc_order_lines_valid():
    failing(sc.check_oc_order_lines_valid(oc_lines((1, 1, "10", "1"), (2, 1, "-10", "1"), (3, 1, "10", "-0.01"),
                                                   (4, 0, "10", "1"), (5, 1, None, "1"))),
            "order_product_id", 2, 3, 4, 5)
    passing(sc.check_oc_order_lines_valid(GOOD_OC_LINES))


# --------------------------------------------------------------------------- refund ledger

REFUND_SCHEMA = {"credit_note_number": pl.Utf8, "order_line_reference": pl.Utf8, "status_code": pl.Utf8,
                 "refunded_gross": pl.Decimal(18, 2)}


def refunds(*rows, schema=REFUND_SCHEMA):
    return pl.DataFrame([dict(zip(schema, r)) for r in rows], schema=schema)


GOOD_REFUNDS = refunds(("CN-1", "11", "RELEASED", Decimal("10.00")), ("CN-1", "SHIPPING", "RELEASED", Decimal("4.95")),
                       ("CN-2", "11", "PENDING", Decimal("0.00")))


def test_refund_lines_unique_credit_note_line():
    failing(rc.check_refund_lines_unique_credit_note_line(refunds(
        ("CN-1", "11", "RELEASED", Decimal("10")), ("CN-1", "11", "RELEASED", Decimal("10")),
        ("CN-2", "11", "RELEASED", Decimal("10")))),
        "credit_note_number", "CN-1", "CN-1")
    passing(rc.check_refund_lines_unique_credit_note_line(GOOD_REFUNDS))


def test_refund_lines_amount_valid_on_decimals_and_on_text():
    failing(rc.check_refund_lines_amount_valid(refunds(("CN-1", "11", "RELEASED", Decimal("10")),
                                                       ("CN-2", "11", "RELEASED", Decimal("-1.00")),
                                                       ("CN-3", "11", "RELEASED", None))),
            "credit_note_number", "CN-2", "CN-3")
    text = {**REFUND_SCHEMA, "refunded_gross": pl.Utf8}
    outcome = failing(rc.check_refund_lines_amount_valid(refunds(
        ("CN-1", "11", "RELEASED", "10.00"), ("CN-2", "11", "RELEASED", "ten"), ("CN-3", "11", "RELEASED", "nan"),
        ("CN-4", "11", "RELEASED", " 5.5 "), schema=text)),
        "credit_note_number", "CN-2", "CN-3")
    assert [e.label for e in outcome.failed] == ["refunded_gross is a number"]
    passing(rc.check_refund_lines_amount_valid(GOOD_REFUNDS))


def test_refund_lines_known_status():
    failing(rc.check_refund_lines_known_status(refunds(("CN-1", "11", "RELEASED", Decimal("1")),
                                                       ("CN-2", "11", "released", Decimal("1")),
                                                       ("CN-3", "11", "PAID", Decimal("1")),
                                                       ("CN-4", "11", None, Decimal("1")))),
            "credit_note_number", "CN-2", "CN-3", "CN-4")
    passing(rc.check_refund_lines_known_status(GOOD_REFUNDS))


# --------------------------------------------------------------------------- canonical

def order_lines(*rows):
    """core.order_lines rows (order, SKU key, unit gross): the order line of the rules is order x SKU."""
    return pl.DataFrame([dict(zip(("order_reference", "sku_key", "unit_gross"), r)) for r in rows],
                        schema={"order_reference": pl.Utf8, "sku_key": pl.Utf8, "unit_gross": pl.Decimal(24, 8)})


GOOD_ORDER_LINES = order_lines(("1001", "ts-red", Decimal("11.9")), ("1001", "ts-blue", Decimal("5")),
                               ("1002", "ts-red", Decimal("0.01")))


def test_order_lines_unique_reference():
    # one order x SKU twice (variants not folded into one line) fails; one SKU in two orders is fine
    failing(cc.check_order_lines_unique_reference(order_lines(("1001", "ts-red", Decimal(1)),
                                                              ("1001", "ts-red", Decimal(2)),
                                                              ("1002", "ts-red", Decimal(3)))),
            "order_reference", "1001", "1001")
    passing(cc.check_order_lines_unique_reference(GOOD_ORDER_LINES))


def test_order_lines_unit_gross_positive():
    failing(cc.check_order_lines_unit_gross_positive(order_lines(("1", "a", Decimal(1)), ("1", "b", Decimal(0)),
                                                                 ("1", "c", Decimal(-1)), ("1", "d", None))),
            "sku_key", "c", "d")
    # a free gift (unit gross 0) is not an error
    passing(cc.check_order_lines_unit_gross_positive(order_lines(("1", "a", Decimal(1)), ("1", "b", Decimal(0)))))
    passing(cc.check_order_lines_unit_gross_positive(GOOD_ORDER_LINES))


def core_refunds(*rows):
    """core.refund_lines rows; sku_key is set when the named order_product row exists in the order."""
    return pl.DataFrame([dict(zip(("credit_note_number", "order_reference", "order_line_reference", "is_money_out",
                                   "sku_key"), r)) for r in rows],
                        schema={"credit_note_number": pl.Utf8, "order_reference": pl.Utf8,
                                "order_line_reference": pl.Utf8, "is_money_out": pl.Boolean, "sku_key": pl.Utf8})


def test_refund_lines_order_line_coverage():
    rows = [(f"CN-{i}", "1001", "11", True, "ts-red") for i in range(19)]
    rows += [("CN-X", "1001", "99", True, None),          # order line unknown
             ("CN-Y", "1002", "11", True, None),          # line 11 exists, but not in order 1002
             ("CN-S", "1001", "SHIPPING", True, None),    # shipping: not judged
             ("CN-P", "1001", "98", False, None)]         # not money out: not judged
    outcome = failing(cc.check_refund_lines_order_line_coverage(core_refunds(*rows)),
                      "credit_note_number", "CN-X", "CN-Y")
    assert outcome.extra["coverage_share"] == pytest.approx(19 / 21, abs=1e-6)
    assert outcome.extra["refund_lines_checked"] == 21 and outcome.extra["refund_lines_missing"] == 2
    # one miss in 20 is 95%: passes, and the miss is still listed
    ok = cc.check_refund_lines_order_line_coverage(core_refunds(*rows[:20], *rows[21:]))
    assert ok.success and ok.extra["coverage_share"] == pytest.approx(0.95)
    assert [r["credit_note_number"] for r in ok.failing_rows] == ["CN-X"]
    passing(cc.check_refund_lines_order_line_coverage(core_refunds(*rows[:19])))
    # nothing to judge: covered
    empty = passing(cc.check_refund_lines_order_line_coverage(core_refunds(*rows[21:])))
    assert empty.extra["coverage_share"] == 1.0


def core_wms_returns(*refs_orders):
    return pl.DataFrame({"return_reference": [r for r, _ in refs_orders], "order_reference": [o for _, o in refs_orders]},
                        schema={"return_reference": pl.Utf8, "order_reference": pl.Utf8})


def test_core_wms_returns_unique_reference():
    failing(cc.check_wms_returns_unique_reference(core_wms_returns(("R1", "1001"), ("R1", "1002"), ("R2", "1001"))),
            "order_reference", "1001", "1002")
    passing(cc.check_wms_returns_unique_reference(core_wms_returns(("R1", "1001"), ("R2", "1001"))))


def test_wms_returns_order_coverage():
    bad = core_wms_returns(("R1", "1001"), ("R2", "1002"), ("R3", "9999"), ("R4", None))
    outcome = failing(cc.check_wms_returns_order_coverage(bad, GOOD_ORDER_LINES), "return_reference", "R3", "R4")
    assert outcome.extra["coverage_share"] == 0.5
    passing(cc.check_wms_returns_order_coverage(core_wms_returns(("R1", "1001"), ("R2", "1002")), GOOD_ORDER_LINES))
    # a lower configured threshold tolerates the misses
    assert cc.check_wms_returns_order_coverage(bad, GOOD_ORDER_LINES, threshold=0.5).success


def rma_lines(*refs_statuses):
    return pl.DataFrame({"rma_reference": [r for r, _ in refs_statuses], "status": [s for _, s in refs_statuses],
                         "status_name": [str(s).title() for _, s in refs_statuses]},
                        schema={"rma_reference": pl.Utf8, "status": pl.Utf8, "status_name": pl.Utf8})


GOOD_RMAS = rma_lines(("RMA-1", "REQUESTED"), ("RMA-2", "AUTHORIZED"), ("RMA-3", "COMPLETED"),
                      ("RMA-4", "REJECTED"), ("RMA-5", "CANCELED"))


def test_rma_lines_unique_reference():
    failing(cc.check_rma_lines_unique_reference(rma_lines(("RMA-1", "REQUESTED"), ("RMA-1", "COMPLETED"),
                                                          ("RMA-2", "REQUESTED"))),
            "status", "REQUESTED", "COMPLETED")
    passing(cc.check_rma_lines_unique_reference(GOOD_RMAS))


def test_rma_lines_canonical_status():
    failing(cc.check_rma_lines_canonical_status(rma_lines(("RMA-1", "REQUESTED"), ("RMA-2", "Pending"),
                                                          ("RMA-3", "CANCELLED"), ("RMA-4", None))),
            "rma_reference", "RMA-2", "RMA-3", "RMA-4")
    passing(cc.check_rma_lines_canonical_status(GOOD_RMAS))


def test_rma_lines_known_action():
    frame = pl.DataFrame({"rma_reference": ["RMA-1", "RMA-2", "RMA-3"], "action_name": ["Refunded", None, "Exchange"],
                          "action_known": [True, True, False]})
    failing(cc.check_rma_lines_known_action(frame), "rma_reference", "RMA-3")
    passing(cc.check_rma_lines_known_action(frame.head(2)))


def test_data_issues_report_each_unjudged_grain():
    schema = {c: pl.Utf8 for c in ("source", "record_key", "reason", "order_reference", "rma_reference",
                                   "return_reference")}
    frame = pl.DataFrame([("storefront", "order_product:9", "price is not a number", "9", None, None),
                          ("refund_ledger", "f.jsonl:3:CN-1", "non-numeric amount", "9", None, None),
                          ("wms_returns", "RMA-4", "unknown state", "4", None, "RMA-4")], schema=schema, orient="row")
    outcome = failing(cc.check_no_unjudged_grains(frame), "record_key", "order_product:9", "f.jsonl:3:CN-1", "RMA-4")
    assert outcome.extra["unjudged_orders"] == 2 and outcome.extra["unjudged_wms_returns"] == 1
    passing(cc.check_no_unjudged_grains(frame.head(0)))


# --------------------------------------------------------------------------- through Dagster, on DuckDB

def _stub(key):
    """Stands in for the source asset: the test has already written its rows."""
    @dg.asset(key=key, partitions_def=daily_partitions)
    def _asset() -> None:
        return None

    return _asset


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    con = connect(path)
    con.execute("""
        INSERT INTO raw.wms_return_line_items (business_date, return_reference, line_item_reference, sku, state)
        VALUES ($d, 'RMA-1', '1', 'SKU-A', 'Undamaged'), ($d, 'RMA-1', '2', 'SKU-A', 'Exploded'),
               ($prev, 'RMA-9', '1', 'SKU-B', 'Vaporised')   -- another business date: not checked
    """, {"d": D, "prev": D.replace(day=30)})
    con.execute("""
        INSERT INTO raw.wms_returns (business_date, return_reference, state, created_at, arrived_at, completed_at,
                                     fetched_via, fetched_at)
        VALUES ($d, 'RMA-1', 'Completed', $t0, $t1, NULL, 'poll', $t2), ($d, 'RMA-2', 'Completed', $t0, $t1, $t2,
                'poll', $t2)
    """, {"d": D, "t0": T0, "t1": T1, "t2": T2})
    con.close()
    return WarehouseResource(path=str(path))


def test_blocking_check_fails_the_run_with_error_severity_and_failing_rows(warehouse):
    result = dg.materialize([_stub(["raw", "wms_return_line_items"]), wc.wms_line_items_known_state],
                            partition_key=PARTITION, resources={"warehouse": warehouse}, raise_on_error=False)
    assert not result.success   # a blocking check failing with ERROR stops the run
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "wms_line_items_known_state" and evaluation.passed is False
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    meta = evaluation.metadata
    rows = meta["failing_rows"].data
    assert [(r["return_reference"], r["line_item_reference"], r["state"]) for r in rows] == [("RMA-1", "2", "Exploded")]
    assert meta["unexpected_count"].value == 1 and meta["rows_checked"].value == 2
    assert meta["business_date"].value == PARTITION


def test_warning_check_reports_without_failing_the_run(warehouse):
    result = dg.materialize([_stub(["raw", "wms_returns"]), wc.wms_returns_state_invariants,
                             wc.wms_returns_unique_reference],
                            partition_key=PARTITION, resources={"warehouse": warehouse}, raise_on_error=False)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["wms_returns_unique_reference"].passed is True
    invariants = evaluations["wms_returns_state_invariants"]
    assert invariants.passed is False and invariants.severity == dg.AssetCheckSeverity.WARN
    [row] = invariants.metadata["failing_rows"].data
    assert row["return_reference"] == "RMA-1" and row["completed_at"] is None
    assert row["failed_expectations"] == ["arrived_at / completed_at are set exactly as the state requires"]


def test_config_driven_check_reads_its_resources(warehouse):
    con = connect(warehouse.path)
    con.execute("INSERT INTO state.storefront_fetches VALUES ($d, TIMESTAMP '2026-04-01 06:00:00')", {"d": D})
    con.execute("INSERT INTO raw.oc_returns (return_id, quantity, return_status_name, valid_from, row_hash) "
                "VALUES (7, 1, 'Pending', TIMESTAMP '2026-04-01 06:00:00', 'a'), "
                "(8, 1, 'Shredded', TIMESTAMP '2026-04-01 06:00:00', 'b')")
    con.close()
    result = dg.materialize([_stub(["raw", "oc_returns"]), sc.oc_returns_valid], partition_key=PARTITION,
                            resources={"warehouse": warehouse,
                                       "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH))},
                            raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert [r["return_id"] for r in evaluation.metadata["failing_rows"].data] == [8]


def test_validity_checks_read_what_the_run_wrote_also_after_a_rerun(warehouse):
    """A rerun of a date keeps the versions its first fetch wrote (their valid_from is that
    fetch's time): the date's check still judges them; a later date whose fetch wrote nothing
    new judges nothing."""
    con = connect(warehouse.path)
    other = D - timedelta(days=1)
    con.execute("INSERT INTO state.storefront_fetches VALUES ($d, TIMESTAMP '2026-03-31 06:00:00'), "
                "($o, TIMESTAMP '2026-04-01 09:00:00')", {"d": other, "o": D})  # D was run again at 09:00
    con.execute("INSERT INTO raw.oc_returns (return_id, quantity, return_status_name, valid_from, row_hash) "
                "VALUES (8, 1, 'Shredded', TIMESTAMP '2026-04-01 06:00:00', 'b')")  # written by D's first run
    con.close()
    written = sc.read_fetch(warehouse, "raw.oc_returns", D, written=True)
    assert written["return_id"].to_list() == [8]
    assert sc.check_oc_returns_valid(written).success is False
    assert sc.read_fetch(warehouse, "raw.oc_returns", other, written=True).height == 0  # before it existed
    assert sc.read_fetch(warehouse, "raw.oc_returns", D)["return_id"].to_list() == [8]
