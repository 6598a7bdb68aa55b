"""The daily job (every asset and check for one business date) and its schedule."""
import os
from datetime import timedelta

import dagster as dg

from pipelines.config import load_config
from pipelines.partitions import daily_partitions

_config = load_config(os.environ.get("RECON_CONFIG") or None)

daily_reconciliation_job = dg.define_asset_job(
    "daily_reconciliation_job",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
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
