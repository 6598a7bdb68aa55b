"""Operating the pipeline: the definitions load and the schedule asks for yesterday, a failed run
says why in one ERROR line and does not block the next day, two runs never write the warehouse
at once, and every source declares how stale it may be."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
import yaml

from conftest import WORLD_END, make_env, query
from pipelines.settings import load_settings

RECON = str(Path(sys.executable).parent / "recon")
REPO = Path(__file__).resolve().parent.parent
SOURCE_ASSETS = {
    "raw/oc_orders", "raw/oc_order_lines", "raw/oc_products", "raw/oc_returns", "raw/oc_return_history",
    "raw/wms_returns", "raw/wms_return_line_items", "raw/wms_stock_adjustments", "raw/wms_stock_adjustment_lines",
    "raw/wms_stocks", "raw/refund_lines", "raw/wms_probed_returns", "raw/wms_probed_return_line_items",
    "raw/wms_tracking_probe_log", "raw/payment_refunds", "raw/rma_platform_orders", "raw/rma_platform_lines",
    "raw/rma_platform_status_history",
}
DETECTIONS_SQL = ("SELECT business_date, discrepancy_id, rule, severity, order_reference, order_line_reference, "
                  "rma_reference, return_reference, tracking_id, sku, refund_reference, quantity_gap, amount_at_risk, "
                  "currency, CAST(details AS VARCHAR) FROM recon.discrepancy_detections "
                  "WHERE business_date = $d ORDER BY ALL")


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_", "REFUND_", "PAYMENTS_", "RMA_PLATFORM_", "OMS_", "DAGSTER_HOME"))}
    full.update(env)
    return full


# --------------------------------------------------------------------------- definitions and schedule

def test_the_definitions_load_with_every_asset_and_check_in_the_daily_job():
    from pipelines.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {"daily_reconciliation_job"}
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("daily_reconciliation_job")
    assert job.asset_layer.executable_asset_keys == graph.get_all_asset_keys()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= SOURCE_ASSETS | {"recon/discrepancies"}
    job_checks = set(job.asset_layer.asset_graph.asset_check_keys)
    assert graph.asset_check_keys and job_checks == set(graph.asset_check_keys)
    assert "log_run_failure_reason" in {h.name for h in job.hook_defs}


@pytest.mark.parametrize("tick, partition", [
    (datetime(2026, 4, 1, 6, 0, tzinfo=timezone.utc), "2026-03-31"),
    (datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc), "2026-02-28"),
    (datetime(2024, 1, 2, 6, 0, tzinfo=timezone.utc), "2024-01-01"),
])
def test_the_daily_schedule_runs_yesterdays_partition(tick, partition):
    from pipelines.config import load_config
    from pipelines.definitions import defs

    schedule = defs.resolve_schedule_def("daily_reconciliation_schedule")
    config = load_config()
    assert schedule.cron_schedule == config.schedule_cron == "0 6 * * *"
    assert schedule.execution_timezone == config.schedule_timezone
    assert schedule.job_name == "daily_reconciliation_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(scheduled_execution_time=tick, repository_def=defs.get_repository_def()) as ctx:
        data = schedule.evaluate_tick(ctx)
    assert [(r.partition_key, r.run_key) for r in data.run_requests] == [(partition, partition)]
    assert data.run_requests[0].tags["dagster/partition"] == partition


def test_the_schedule_time_comes_from_the_configuration(tmp_path):
    config = tmp_path / "recon.yaml"
    config.write_text(yaml.safe_dump({"schedule": {"cron": "30 4 * * *", "timezone": "Europe/Istanbul"}}))
    script = ("from pipelines.definitions import defs\n"
              "s = defs.resolve_schedule_def('daily_reconciliation_schedule')\n"
              "print(s.cron_schedule, s.execution_timezone)")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=REPO, capture_output=True, text=True,
                         env=_clean_env({"RECON_CONFIG": str(config)}), timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["30", "4", "*", "*", "*", "Europe/Istanbul"]


# --------------------------------------------------------------------------- freshness

def test_every_source_asset_may_be_at_most_one_day_stale():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    sources = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()
               if graph.get(k).group_name == "sources"}
    assert set(sources) == SOURCE_ASSETS
    for name, node in sources.items():
        policy = node.freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy), name
        assert policy.fail_window.to_timedelta() <= timedelta(days=1), name
        if policy.warn_window is not None:
            assert policy.warn_window.to_timedelta() < policy.fail_window.to_timedelta(), name


# --------------------------------------------------------------------------- failures

def test_a_failed_run_logs_one_error_line_with_the_reason_and_does_not_block_the_next_day(
        tmp_path, demo_world, manifest, emulator):
    from pipelines.cli import ensure_dagster_home
    from pipelines.runner import run_business_date

    fast_fail = tmp_path / "fast.yaml"
    fast_fail.write_text(yaml.safe_dump({"wms": {"max_retries": 1, "backoff_seconds": 0.01, "timeout_seconds": 2}}))
    home = tmp_path / "home"
    up = make_env(home, demo_world, manifest, emulator.base_url, RECON_CONFIG=str(fast_fail))
    down = {**up, "OPLOG_BASE_URL": "http://127.0.0.1:9"}
    failed_day, next_day = WORLD_END - timedelta(days=1), WORLD_END
    dagster_home = ensure_dagster_home(tmp_path / "dagster_home")  # the pool limit of `recon demo`

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        failed = run_business_date(failed_day, settings=load_settings(down), instance=instance)
        assert not failed.success
        errors = [e for e in instance.all_logs(failed.run_id)
                  if e.level == logging.ERROR and e.user_message.startswith("RUN FAILED")]
        assert len(errors) == 1, [e.user_message for e in errors]
        line = errors[0].user_message
        assert "\n" not in line
        prefix = f"RUN FAILED for business date {failed_day.isoformat()}: "
        assert line.startswith(prefix)
        step, reason = line[len(prefix):].split(": ", 1)
        assert step in failed.failed_steps and "wms" in step
        assert "WMS API" in reason and "unreachable" in reason
        assert manifest["token"] not in line
        assert instance.get_run_by_id(failed.run_id).status == dg.DagsterRunStatus.FAILURE

        ok = run_business_date(next_day, settings=load_settings(up), instance=instance)
        assert ok.success, ok.reason
        assert not [e for e in instance.all_logs(ok.run_id) if e.user_message.startswith("RUN FAILED")]
        # the failed run left no warehouse slot claimed behind it
        from pipelines.partitions import WAREHOUSE_POOL
        assert not instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
    assert query(load_settings(up), "SELECT count(*) FROM recon.discrepancy_detections WHERE business_date = $d",
                 {"d": next_day})[0][0] > 0


# --------------------------------------------------------------------------- concurrency

def test_the_demo_instance_limits_the_warehouse_pool_to_one(tmp_path):
    from pipelines.cli import DAGSTER_YAML, ensure_dagster_home

    home = ensure_dagster_home(tmp_path / "dagster_home")
    assert (home / "dagster.yaml").read_text() == DAGSTER_YAML
    with dg.DagsterInstance.from_config(str(home)) as instance:
        pool_config = instance.get_concurrency_config().pool_config
        assert pool_config.default_pool_limit == 1
        # enforced per step (granularity "op", the default), which also holds for in-process runs
        assert pool_config.pool_granularity is None or pool_config.pool_granularity.value == "op"
        assert instance.event_log_storage.supports_global_concurrency_limits


def _pool_step_windows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float, str]]:
    """(start, end, step) of every step of the run, from its STEP_START and STEP_SUCCESS/FAILURE events."""
    starts: dict[str, float] = {}
    windows = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not entry.step_key:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[entry.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            windows.append((starts[entry.step_key], entry.timestamp, f"{run_id[:8]}:{entry.step_key}"))
    return windows


def test_two_runs_started_together_never_write_the_warehouse_at_once(tmp_path, demo_world, manifest, emulator):
    from pipelines.cli import ensure_dagster_home
    from pipelines.partitions import WAREHOUSE_POOL
    from pipelines.runner import run_business_date

    dates = [WORLD_END - timedelta(days=1), WORLD_END]
    dagster_home = ensure_dagster_home(tmp_path / "dagster_home")
    # The instance has been used before (as after `recon demo`): its storage exists and the pool's
    # slot (limit 1, from default_limit) was created by an earlier run. On a brand-new DAGSTER_HOME,
    # two processes starting in the same instant race in Dagster's SQLite storage: creating the tables
    # ("table ... already exists") and creating the pool's slots (both runs got a slot for their first
    # step). DuckDB's own file lock still keeps the writes apart (warehouse.connect waits on it).
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
    env = make_env(tmp_path / "shared", demo_world, manifest, emulator.base_url, DAGSTER_HOME=str(dagster_home))
    procs = [subprocess.Popen([RECON, "run", "--date", d.isoformat()], env=_clean_env(env),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in dates]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for d, p, (out, err) in zip(dates, procs, outputs):
        assert p.returncode == 0, f"{d}: {err[-2000:]}"
        assert f"Discrepancies open on {d.isoformat()}" in out

    # Both runs are in the shared instance, and no two of their (warehouse pool) steps overlapped.
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        assert sorted(r.tags["dagster/partition"] for r in runs) == [d.isoformat() for d in dates]
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        windows = sorted(w for r in runs for w in _pool_step_windows(instance, r.run_id))
    assert len({w[2][:8] for w in windows}) == 2
    for (_, end, step), (start, _, nxt) in zip(windows, windows[1:]):
        assert end <= start, f"{step} and {nxt} ran at the same time"

    # Each date holds what a sequential run gives, once.
    shared = load_settings(env)
    sequential = load_settings(make_env(tmp_path / "sequential", demo_world, manifest, emulator.base_url))
    for d in dates:
        assert run_business_date(d, settings=sequential).success
    for d in dates:
        got = query(shared, DETECTIONS_SQL, {"d": d})
        assert got and got == query(sequential, DETECTIONS_SQL, {"d": d})
    dupes = query(shared, "SELECT count(*) - count(DISTINCT (business_date, discrepancy_id)) "
                          "FROM recon.discrepancy_detections")[0][0]
    assert dupes == 0
    # The register is a pure function of the whole detection history, and the last merge runs after
    # both dates' detections, whichever order the steps interleaved in: it equals the sequential one.
    register = ("SELECT * EXCLUDE (details), CAST(details AS VARCHAR) FROM recon.discrepancies "
                "ORDER BY discrepancy_id")
    assert query(shared, register) == query(sequential, register)
