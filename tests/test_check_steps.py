"""checks/steps.py: the daily job runs its checks a few to a Dagster step. A blocking failure in a
shared step still stops what is downstream, the other checks of the step still report (also
when one of them raises), and the job's steps hold every check once, none of them downstream of
another asset of its own step."""
import dagster as dg
import pytest

from checks import all_checks
from checks.steps import asset_check, in_steps, step_name
from pipelines.partitions import daily_partitions

PARTITION = "2026-03-31"
CALLS: list[str] = []


@dg.asset(key=["raw", "wms_demo_items"], partitions_def=daily_partitions)
def items() -> None:
    CALLS.append("items")


@dg.asset(key=["core", "demo_units"], deps=[["raw", "wms_demo_items"]], partitions_def=daily_partitions)
def units() -> None:
    CALLS.append("units")


@asset_check(asset=["raw", "wms_demo_items"], blocking=True, description="BLOCKING: fails on purpose")
def demo_items_blocking(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                               metadata={"business_date": context.partition_key})


@asset_check(asset=["raw", "wms_demo_items"], blocking=False, description="WARN: raises")
def demo_items_raising(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    raise RuntimeError("the check itself broke")


@asset_check(asset=["raw", "wms_demo_items"], blocking=True, description="BLOCKING: raises")
def demo_items_blocking_raising(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    raise RuntimeError("the blocking check broke")


@asset_check(asset=["raw", "wms_demo_items"], blocking=True, description="BLOCKING: passes")
def demo_items_blocking_passing(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@asset_check(asset=["raw", "wms_demo_items"], blocking=False, description="WARN: passes")
def demo_items_passing(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


@asset_check(asset=["core", "demo_units"], blocking=False, description="WARN: passes")
def demo_units_passing(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


def _materialize(checks):
    CALLS.clear()
    steps = in_steps(checks, [items, units])
    return steps, dg.materialize([items, units, *steps], partition_key=PARTITION, raise_on_error=False)


def test_a_blocking_failure_in_a_shared_step_stops_downstream_and_the_others_still_report():
    steps, result = _materialize([demo_items_blocking, demo_items_passing, demo_units_passing])
    assert sorted(s.node_def.name for s in steps) == ["core_depth_1_checks", "raw_wms_checks"]
    assert not result.success
    assert CALLS == ["items"]  # core/demo_units never ran: its upstream's blocking check failed
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"demo_items_blocking", "demo_items_passing"}
    assert evaluations["demo_items_blocking"].passed is False
    assert evaluations["demo_items_blocking"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["demo_items_blocking"].metadata["business_date"].value == PARTITION
    assert evaluations["demo_items_passing"].passed is True
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["raw_wms_checks"]
    from pipelines.jobs import failure_reason_of_error
    failure = next(e for e in result.all_events if e.is_step_failure)
    reason = failure_reason_of_error(failure.step_failure_data.error)
    assert "wms_demo_items" in reason and "demo_items_blocking" in reason and "\n" not in reason, reason


def test_a_warning_check_that_raises_is_reported_failed_and_stops_nothing():
    """Beside a passing blocking check in its step: downstream still runs."""
    _, result = _materialize([demo_items_raising, demo_items_blocking_passing, demo_units_passing])
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"demo_items_raising", "demo_items_blocking_passing", "demo_units_passing"}
    raised = evaluations["demo_items_raising"]
    assert raised.passed is False and raised.severity == dg.AssetCheckSeverity.WARN
    assert "the check itself broke" in raised.metadata["error"].value
    assert CALLS == ["items", "units"]


def test_a_blocking_check_that_raises_fails_its_step_after_the_others_report():
    _, result = _materialize([demo_items_blocking_raising, demo_items_passing, demo_units_passing])
    assert not result.success
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {"demo_items_passing"}
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "raw_wms_checks"
    from pipelines.jobs import failure_reason_of_error
    reason = failure_reason_of_error(failure.step_failure_data.error)
    assert "raw/wms_demo_items:demo_items_blocking_raising" in reason and "blocking check broke" in reason
    assert CALLS == ["items"]  # what it guards does not run


def test_passing_checks_in_shared_steps_let_the_run_succeed():
    _, result = _materialize([demo_items_passing, demo_units_passing])
    assert result.success and CALLS == ["items", "units"]
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {"demo_items_passing",
                                                                          "demo_units_passing"}


def test_the_job_holds_every_check_once_and_no_step_guards_its_own_downstream():
    from pipelines.definitions import defs

    job_steps = list(defs.asset_checks)
    keys = [spec.key for step in job_steps for spec in step.check_specs]
    assert len(keys) == len(set(keys)) == sum(len(list(c.check_specs)) for c in all_checks)
    assert len(job_steps) < len(all_checks) / 3  # the point: a few steps, not one per check
    graph = defs.resolve_asset_graph()

    def ancestors(key):
        out, todo = set(), list(graph.get(key).parent_keys)
        while todo:
            k = todo.pop()
            if k not in out:
                out.add(k)
                todo.extend(graph.get(k).parent_keys)
        return out

    for step in job_steps:
        assets = {spec.asset_key for spec in step.check_specs}
        for key in assets:
            assert not ancestors(key) & assets, (step.node_def.name, key)


@pytest.mark.parametrize("key,depth,name", [
    (["raw", "oc_orders"], 0, "raw_storefront_checks"),
    (["raw", "wms_returns"], 0, "raw_wms_checks"),
    (["raw", "wms_probed_returns"], 1, "raw_wms_depth_1_checks"),
    (["raw", "payment_refunds"], 0, "raw_payments_checks"),
    (["core", "rma_lines"], 2, "core_depth_2_checks"),
    (["recon", "discrepancy_detections"], 6, "recon_depth_6_checks"),
])
def test_step_names(key, depth, name):
    assert step_name(dg.AssetCheckSpec("c", asset=key), depth) == name
