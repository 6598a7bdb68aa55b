"""The daily job (every asset and check for one business date) and its schedule."""
import os
from datetime import timedelta

import dagster as dg

from pipelines.config import load_config
from pipelines.partitions import daily_partitions

_config = load_config(os.environ.get("RECON_CONFIG") or None)

# Our own exceptions already read as a reason: their class name is left out of the line.
OWN_ERRORS = ("SourceUnavailable", "ConfigError", "InputMissing", "WorkingRowsMissing", "CheckRaised")


def _first_line(text: str) -> str:
    """The first line; a line ending in ':' is followed by a list (Dagster's failed blocking checks,
    one per line): the list joins it, so the line names what failed."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} " + "; ".join(lines[1:])
    return lines[0]


def failure_reason(exc: BaseException | None) -> str:
    """The first line of the deepest cause of a step's exception (our errors never carry secrets)."""
    if exc is None:
        return "step failed"
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    message = _first_line(str(exc))
    name = type(exc).__name__
    if name in OWN_ERRORS and message:
        return message
    return f"{name}: {message}" if message else name


def failure_reason_of_error(err) -> str:
    """The same line from a recorded step failure (dagster's SerializableErrorInfo)."""
    while err.cause is not None:
        err = err.cause
    message = _first_line(err.message or "")
    if err.cls_name in OWN_ERRORS:
        prefix = f"{err.cls_name}: "
        message = message.split(prefix, 1)[1] if prefix in message else message
        return message or err.cls_name
    return message or (err.cls_name or "step failed")


def _is_first_failure(context: dg.HookContext) -> bool:
    """Only the run's first failed step logs the line (several sources may fail for one cause)."""
    try:
        records = context.instance.get_records_for_run(
            context.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1, ascending=True).records
    except Exception:  # noqa: BLE001 - never let the reporting hide the failure itself
        return True
    return not records or records[0].event_log_entry.step_key == context.step_key


@dg.failure_hook(name="log_run_failure_reason")
def log_run_failure_reason(context: dg.HookContext) -> None:
    """Logs one ERROR line naming the business date, the failed step and why it failed."""
    if not _is_first_failure(context):
        return
    run = context.instance.get_run_by_id(context.run_id)
    business_date = (run.tags.get("dagster/partition") if run else None) or "?"
    context.log.error(f"RUN FAILED for business date {business_date}: {context.step_key}: "
                      f"{failure_reason(context.op_exception)}")


daily_reconciliation_job = dg.define_asset_job(
    "daily_reconciliation_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    hooks={log_run_failure_reason},
    description="Ingest the three sources, rebuild the canonical tables, run every rule and write the finance "
                "export for one business date.",
)


@dg.schedule(
    job=daily_reconciliation_job,
    cron_schedule=_config.schedule_cron,
    execution_timezone=_config.schedule_timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every day, reconcile yesterday's business date.",
)
def daily_reconciliation_schedule(context: dg.ScheduleEvaluationContext):
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=yesterday, partition_key=yesterday)
