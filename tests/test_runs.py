"""Whole runs through Dagster and the `recon run` command: the discrepancy lifecycle across
dates on real sources, reruns, a date range equal to single runs, and exit codes."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from conftest import WORLD_END, make_env, query
from pipelines.settings import load_settings

RECON = str(Path(sys.executable).parent / "recon")
D1, D2, D3 = WORLD_END - timedelta(days=2), WORLD_END - timedelta(days=1), WORLD_END
LIFECYCLE_SQL = ("SELECT discrepancy_id, rule, severity, status, business_date, first_detected_on, last_detected_on, "
                 "resolved_on, order_reference, order_line_reference, rma_reference, return_reference, sku, "
                 "refund_reference, quantity_gap, amount_at_risk, currency, CAST(details AS VARCHAR) "
                 "FROM recon.discrepancies ORDER BY discrepancy_id")


def recon_cli(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_",
                                                                     "REFUND_", "PAYMENTS_", "RMA_PLATFORM_", "OMS_", "DAGSTER_HOME"))}
    full.update(env)
    return subprocess.run([RECON, *args], env=full, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def world_copy(tmp_path, demo_world) -> Path:
    """A private copy of the world whose storefront a test may change."""
    dst = tmp_path / "world"
    shutil.copytree(demo_world, dst)
    return dst


def test_fixed_in_the_sources_is_resolved_with_the_same_id_and_reruns_change_nothing(
        tmp_path, world_copy, manifest, emulator, monkeypatch):
    from pipelines.runner import run_business_date

    for key, value in make_env(tmp_path / "home", world_copy, manifest, emulator.base_url).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert run_business_date(D2, settings=settings).success
    unsynced = query(settings, "SELECT discrepancy_id, sku, quantity_gap FROM recon.discrepancies "
                               "WHERE rule = 'UNSYNCED_STOCK_ADJUSTMENT' AND status = 'OPEN' ORDER BY sku")
    assert unsynced, "the world's stock cases are open on D2"
    fixed_id, sku, gap = unsynced[0]
    # The shop's integration finally synchronises that SKU's stock.
    with sqlite3.connect(world_copy / "storefront.sqlite") as db:
        db.execute("UPDATE oc_product SET quantity = quantity + ? WHERE model = ?", (gap, sku))
    assert run_business_date(D3, settings=settings).success
    after = {r[0]: r for r in query(settings, LIFECYCLE_SQL)}
    assert after[fixed_id][3] == "RESOLVED"
    assert after[fixed_id][5:8] == (D2, D2, D3)  # first, last detected, resolved on
    still_open = [i for i, *_ in unsynced[1:]]
    assert all(after[i][3] == "OPEN" for i in still_open)

    assert run_business_date(D3, settings=settings).success
    assert {r[0]: r for r in query(settings, LIFECYCLE_SQL)} == after
    dupes = query(settings, "SELECT count(*) - count(DISTINCT (business_date, discrepancy_id)) "
                            "FROM recon.discrepancy_detections")[0][0]
    assert dupes == 0


def test_a_date_range_gives_the_same_table_as_single_runs(tmp_path, demo_world, manifest, emulator):
    range_env = make_env(tmp_path / "range", demo_world, manifest, emulator.base_url)
    result = recon_cli(range_env, "run", "--date", D1.isoformat(), "--to", D3.isoformat())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Discrepancies open on " + D3.isoformat() in result.stdout
    single_env = make_env(tmp_path / "single", demo_world, manifest, emulator.base_url)
    for d in (D1, D2, D3):
        assert recon_cli(single_env, "run", "--date", d.isoformat()).returncode == 0
    ranged = query(load_settings(range_env), LIFECYCLE_SQL)
    singles = query(load_settings(single_env), LIFECYCLE_SQL)
    assert ranged and ranged == singles


def test_exit_codes_and_one_line_reasons(tmp_path, demo_world, manifest, emulator):
    fast_fail = tmp_path / "fast.yaml"
    fast_fail.write_text(yaml.safe_dump({"wms": {"max_retries": 1, "backoff_seconds": 0.01, "timeout_seconds": 2}}))
    base = make_env(tmp_path / "home", demo_world, manifest, emulator.base_url, RECON_CONFIG=str(fast_fail))

    ok = recon_cli(base, "run", "--date", WORLD_END.isoformat())
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "UNSYNCED_STOCK_ADJUSTMENT" in ok.stdout  # discrepancies found: still exit 0

    down = recon_cli({**base, "OPLOG_BASE_URL": "http://127.0.0.1:9"}, "run", "--date", WORLD_END.isoformat())
    assert down.returncode != 0
    last = down.stderr.strip().splitlines()[-1]
    assert last.startswith("recon: ") and "WMS API" in last and "unreachable" in last
    assert manifest["token"] not in down.stderr + down.stdout

    secret = "s3cr3t-pw-91d"
    wrong_db = recon_cli({**base, "STOREFRONT_DB_URL": f"mysql+pymysql://recon:{secret}@127.0.0.1:9/opencart"},
                         "run", "--date", WORLD_END.isoformat())
    assert wrong_db.returncode != 0
    last = wrong_db.stderr.strip().splitlines()[-1]
    assert last.startswith("recon: ") and "storefront" in last.lower()
    assert secret not in wrong_db.stderr + wrong_db.stdout

    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text(yaml.safe_dump({"thresholds": {"transit_days": "three weeks"}}))
    bad = recon_cli({**base, "RECON_CONFIG": str(bad_config)}, "run", "--date", WORLD_END.isoformat())
    assert bad.returncode == 2
    assert "transit_days" in bad.stderr.strip().splitlines()[-1]
