"""Runs business dates through Dagster (the same job, assets and checks the UI shows).

With ``DAGSTER_HOME`` set, runs are recorded in that instance and appear in the UI.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable

import dagster as dg
import polars as pl

from pipelines.settings import Settings, load_settings


@dataclass
class DateOutcome:
    business_date: date
    success: bool
    reason: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    summary: pl.DataFrame | None = None
    export_csv: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    metadata: dict[str, dict] = field(default_factory=dict)  # "schema/table" -> materialisation metadata
    checks: dict[str, bool] = field(default_factory=dict)     # "schema/table:check" -> passed


def date_range(start: date, end: date) -> list[date]:
    if end < start:
        raise ValueError(f"--to {end} is before --date {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def instance_for(settings: Settings) -> dg.DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        instance = dg.DagsterInstance.get()
        # Create the warehouse pool's slots before any run claims them: two first runs on a new
        # DAGSTER_HOME would otherwise both create them at once and both get a slot.
        from pipelines.partitions import WAREHOUSE_POOL
        try:
            instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        except Exception:  # noqa: BLE001 - storages without pools: DuckDB's file lock still serialises writes
            pass
        return instance
    return dg.DagsterInstance.ephemeral()



# Tags of every run: the process executing it (in-process runs have no run worker Dagster could watch).
PID_TAG, HOST_TAG = "recon/pid", "recon/host"
UNFINISHED = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs of this host whose process is gone (``kill -9``, power cut) still hold the warehouse
    pool's slot, so every later run would wait for it forever, and show as running in the UI:
    mark them failed and free their slots."""
    dead = []
    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(UNFINISHED), tags={HOST_TAG: host})):
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"process {pid} ended without finishing the run (killed)")
        try:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        except Exception:  # noqa: BLE001 - storages without pools
            pass
        dead.append(run.run_id)
    return dead


def first_failure_reason(result: dg.ExecuteInProcessResult) -> tuple[str, list[str]]:
    """A one-line reason from the first failed step: the deepest cause's message."""
    from pipelines.jobs import failure_reason_of_error

    failed = [e.step_key for e in result.all_events if e.is_step_failure]
    if not failed:
        return "run failed (no step failure recorded)", failed
    first = next(e for e in result.all_events if e.is_step_failure)
    return f"{first.step_key}: {failure_reason_of_error(first.step_failure_data.error)}", failed


def run_business_date(d: date, *, settings: Settings | None = None, instance: dg.DagsterInstance | None = None,
                      defs: dg.Definitions | None = None, log_level: str = "INFO") -> DateOutcome:
    from pipelines.definitions import build_definitions

    settings = settings or load_settings()
    defs = defs or build_definitions(settings)
    instance = instance or instance_for(settings)
    job = defs.resolve_job_def("daily_reconciliation_job")
    fail_dead_runs(instance)
    started = time.monotonic()
    result = job.execute_in_process(
        partition_key=d.isoformat(), instance=instance, raise_on_error=False,
        tags={PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()},
        # What reaches the console; every event is still stored in the instance (the UI).
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    outcome = DateOutcome(d, result.success, run_id=result.run_id, seconds=time.monotonic() - started)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        outcome.metadata["/".join(mat.asset_key.path)] = {k: v.value for k, v in mat.metadata.items()}
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks[f"{'/'.join(evaluation.asset_key.path)}:{evaluation.check_name}"] = evaluation.passed
    from pipelines import alerts
    if not result.success:
        outcome.reason, outcome.failed_steps = first_failure_reason(result)
        alerts.send(settings.alert_webhook, alerts.failure_text(d, outcome.reason))
        return outcome
    from pipelines.config import load_config
    from pipelines.reconcile import summary
    from pipelines.resources.warehouse import connect
    store_currency = load_config(settings.config_path).store_currency
    con = connect(settings.warehouse, read_only=True)
    try:
        outcome.summary = summary(con, d, store_currency)
    finally:
        con.close()
    outcome.export_csv = str(settings.export_dir / d.isoformat() / "discrepancies.csv")
    alerts.send(settings.alert_webhook,
                alerts.success_text(d, outcome.metadata.get("exports/finance_export", {}), store_currency))
    return outcome


def run_dates(dates: list[date], *, settings: Settings | None = None,
              progress: Callable[[str], None] = print, log_level: str = "INFO") -> list[DateOutcome]:
    from pipelines.definitions import build_definitions

    settings = settings or load_settings()
    defs = build_definitions(settings)
    instance = instance_for(settings)
    outcomes = []
    for i, d in enumerate(dates, 1):
        progress(f"[{i}/{len(dates)}] reconciling business date {d} ...")
        try:
            outcome = run_business_date(d, settings=settings, instance=instance, defs=defs, log_level=log_level)
        except Exception as exc:  # outside Dagster's steps (the instance, the warehouse): still alert
            from pipelines import alerts
            line = (str(exc).strip().splitlines() or [""])[0]
            alerts.send(settings.alert_webhook, alerts.failure_text(d, f"{type(exc).__name__}: {line}"))
            raise
        outcomes.append(outcome)
        if not outcome.success:
            progress(f"[{i}/{len(dates)}] {d} FAILED after {outcome.seconds:.1f}s: {outcome.reason}")
            break
        open_n = int(outcome.summary["open_count"].sum()) if outcome.summary is not None else 0
        progress(f"[{i}/{len(dates)}] {d} done in {outcome.seconds:.1f}s: {open_n} open discrepancies")
    return outcomes
