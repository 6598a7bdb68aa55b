"""`recon demo` (what `make demo` runs) on a small world, end to end, as a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RECON = str(Path(sys.executable).parent / "recon")


def test_recon_demo_builds_the_world_runs_dagster_and_prints_where_things_are(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_", "REFUND_", "PAYMENTS_",
                                                                    "RMA_PLATFORM_", "OMS_", "DAGSTER_HOME"))}
    env["RECON_HOME"] = str(tmp_path / "home")
    result = subprocess.run([RECON, "demo", "--returns", "60", "--days", "2", "--end-date", "2026-03-31"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "[demo 1] building the demo world" in out and "emulator listening on http://127.0.0.1:" in out
    assert "payment provider /v1/" in out
    assert "[1/2] reconciling business date 2026-03-30" in out and "[2/2] 2026-03-31 done" in out
    assert "missed 0, extra 0, wrong amount 0" in out
    assert "Rejected records kept in recon.rejects: 2 from refund_ledger" in out
    export = tmp_path / "home" / "exports" / "2026-03-31"
    for name in ("discrepancies.csv", "discrepancies.parquet", "discrepancies.xlsx", "trend.png"):
        assert (export / name).exists() and str(export / name) in out
    assert "Movement: new today " in out and ", resolved today " in out and "Ageing: 0-1 days " in out
    dagster_home = tmp_path / "home" / "dagster_home"
    assert (dagster_home / "dagster.yaml").exists() and f"DAGSTER_HOME={dagster_home}" in out
    assert "Demo finished in" in out
    # the runs are recorded in the instance the UI opens
    import dagster as dg
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2 and all(r.is_success for r in runs)
