"""Runs the Dagster daemon executes (schedule, UI, backfill) alert through the run status sensors
(pipelines/sensors.py), read from the run's events: a success posts the summary, a failure its
reason, and a run ``recon run`` executed in its own process (pid tag) is left to that process."""
from __future__ import annotations

import dagster as dg

from conftest import WORLD_END
from pipelines.runner import PID_TAG
from pipelines.sensors import run_alert_sensor, run_failure_alert_sensor
from test_alerts import Receiver, _settings

D = WORLD_END.isoformat()


def _run(settings, tags=None):
    from pipelines.definitions import build_definitions

    instance = dg.DagsterInstance.ephemeral()
    job = build_definitions(settings).resolve_job_def("daily_reconciliation_job")
    result = job.execute_in_process(partition_key=D, instance=instance, raise_on_error=False, tags=tags or {})
    return instance, result


def test_the_sensors_post_after_daemon_runs_and_leave_in_process_runs_to_their_process(recon_env, monkeypatch):
    receiver = Receiver()
    try:
        settings = _settings(monkeypatch, receiver.url)
        instance, result = _run(settings)
        assert result.success
        context = dg.build_run_status_sensor_context(
            sensor_name="run_alert_sensor", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id), dagster_event=result.get_run_success_event())
        run_alert_sensor(context)
        assert len(receiver.posts) == 1
        text = receiver.posts[0]["body"]["text"]
        assert text.startswith(f"Returns reconciliation {D}: ") and "New HIGH (" in text
        assert f"{D}/discrepancies.xlsx" in text

        tagged_instance, tagged = _run(settings, tags={PID_TAG: "1"})
        context = dg.build_run_status_sensor_context(
            sensor_name="run_alert_sensor", dagster_instance=tagged_instance,
            dagster_run=tagged_instance.get_run_by_id(tagged.run_id), dagster_event=tagged.get_run_success_event())
        assert isinstance(run_alert_sensor(context), dg.SkipReason)
        assert len(receiver.posts) == 1

        monkeypatch.setenv("OPLOG_TOKEN", "wrong-token")
        failing = _settings(monkeypatch, receiver.url)
        instance, result = _run(failing)
        assert not result.success
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert_sensor", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),
            dagster_event=result.get_run_failure_event()).for_run_failure()
        run_failure_alert_sensor(context)
        from pipelines.runner import first_failure_reason
        reason, _ = first_failure_reason(result)
        assert receiver.posts[-1]["body"]["text"] == f"Returns reconciliation {D} FAILED: {reason}"
        assert "wrong-token" not in receiver.posts[-1]["body"]["text"]
    finally:
        receiver.close()
