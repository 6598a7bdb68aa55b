"""The daily business-date partitions every asset shares, and date helpers."""
from __future__ import annotations

import os
from datetime import date, datetime, time, timedelta, timezone

import dagster as dg

from pipelines.config import load_config

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=load_config(os.environ.get("RECON_CONFIG") or None).partitions_start_date,
    timezone="UTC",
)

# Every asset that writes the warehouse runs in this pool; its limit (1) is set in the
# Dagster instance (dagster.yaml) so two runs never write the DuckDB file at once.
WAREHOUSE_POOL = "duckdb_warehouse"

# How stale a source asset may be: a daily pipeline reads every source once a day, so a
# source not materialized for a day shows as failing its freshness policy in the UI.
SOURCE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(days=1))


def business_date_of(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    return date.fromisoformat(context.partition_key)


def as_of(business_date: date) -> datetime:
    """T = D+1 00:00:00 UTC (naive UTC, as stored in DuckDB TIMESTAMP columns)."""
    return datetime.combine(business_date + timedelta(days=1), time.min)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
