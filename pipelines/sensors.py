"""Alerts for runs the Dagster daemon executes (the schedule, a launch from the UI, a backfill):
after each run of the daily job, the same POST as ``recon run`` sends (pipelines/alerts.py).

Runs that ``recon run`` / ``recon demo`` execute in their own process (tagged with its pid)
alert from there and are skipped here. The sensors read the run's events from the instance,
never the warehouse (the daemon must not hold the DuckDB file).
"""
import dagster as dg

from pipelines import alerts
from pipelines.jobs import daily_reconciliation_job, failure_reason_of_error
from pipelines.runner import PID_TAG
from pipelines.settings import load_settings

EXPORT_KEY = dg.AssetKey(["exports", "finance_export"])


def _business_date(run: dg.DagsterRun) -> str:
    return run.tags.get("dagster/partition") or "?"


def _export_metadata(instance: dg.DagsterInstance, run_id: str) -> dict:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == EXPORT_KEY:
            return {k: v.value for k, v in materialization.metadata.items()}
    return {}


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[daily_reconciliation_job],
                      name="run_alert_sensor", default_status=dg.DefaultSensorStatus.RUNNING,
                      description="After a successful daily run: new HIGH items, totals and the workbook's path "
                                  "to RECON_ALERT_WEBHOOK.")
def run_alert_sensor(context: dg.RunStatusSensorContext):
    settings = load_settings()
    if not settings.alert_webhook or PID_TAG in context.dagster_run.tags:
        return dg.SkipReason("no RECON_ALERT_WEBHOOK, or the run's own process alerted")
    from pipelines.config import load_config
    currency = load_config(settings.config_path).store_currency
    text = alerts.success_text(_business_date(context.dagster_run),
                               _export_metadata(context.instance, context.dagster_run.run_id), currency)
    alerts.send(settings.alert_webhook, text)


@dg.run_failure_sensor(monitored_jobs=[daily_reconciliation_job], name="run_failure_alert_sensor",
                       default_status=dg.DefaultSensorStatus.RUNNING,
                       description="After a failed daily run: its one-line reason to RECON_ALERT_WEBHOOK.")
def run_failure_alert_sensor(context: dg.RunFailureSensorContext):
    settings = load_settings()
    if not settings.alert_webhook or PID_TAG in context.dagster_run.tags:
        return dg.SkipReason("no RECON_ALERT_WEBHOOK, or the run's own process alerted")
    reason = "run failed"
    for event in context.get_step_failure_events()[:1]:
        reason = f"{event.step_key}: {failure_reason_of_error(event.step_failure_data.error)}"
    alerts.send(settings.alert_webhook, alerts.failure_text(_business_date(context.dagster_run), reason))


alert_sensors = [run_alert_sensor, run_failure_alert_sensor]
