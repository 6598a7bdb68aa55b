"""`kill -9` of `recon run --date D` at several points (WMS ingestion, canonical build, rules,
export), then the same date run again to completion: the warehouse and the export equal those of a
clean run in another RECON_HOME, no staging folder is left in the exports dir, no row is doubled.

The moment to kill is read from the run's own event log: DAGSTER_HOME (with the instance config
`recon demo` writes, warehouse pool limit 1) stores every event in
``history/runs/<run_id>.db``; the test polls it for the step's ``STEP_START`` (the console logger
only shows the steps' own messages). The scenarios run side by side, each in its own
RECON_HOME/DAGSTER_HOME, to keep the file short."""
from __future__ import annotations

import glob
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import WORLD_END, make_env

RECON = str(Path(sys.executable).parent / "recon")
D = WORLD_END.isoformat()
EXPORT_FILES = {"discrepancies.csv", "discrepancies.parquet", "discrepancies.xlsx", "trend.png"}
# Columns holding the wall clock of the run (when a source was read, a probe made, a date evaluated,
# a storefront version came into force or was closed, a working table built).
WALL_CLOCK_COLUMNS = {"fetched_at", "read_at", "probed_at", "evaluated_at", "valid_from", "valid_to", "built_at",
                      "started_at"}
RUN_TIMEOUT_S = 300
WMS_LATENCY_S = 0.4


def _env(home: Path, world: Path, manifest: dict, base_url: str) -> dict[str, str]:
    from pipelines.cli import ensure_dagster_home

    dagster_home = ensure_dagster_home(home / "dagster_home")  # dagster.yaml of `recon demo`: pool limit 1
    full = {k: v for k, v in os.environ.items() if not k.startswith(("RECON_", "OPLOG_", "STOREFRONT_",
                                                                     "REFUND_", "PAYMENTS_", "RMA_PLATFORM_", "OMS_", "DAGSTER_HOME"))}
    full.update(make_env(home, world, manifest, base_url, DAGSTER_HOME=str(dagster_home)))
    return full


def _run_dbs(env: dict[str, str]) -> set[str]:
    return set(glob.glob(os.path.join(env["DAGSTER_HOME"], "history", "runs", "*-*-*-*-*.db")))


def _step_events(db: str, step_key: str) -> set[str]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            rows = con.execute("SELECT dagster_event_type FROM event_logs WHERE step_key = ?", (step_key,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or locked by the writer for a moment
        return set()
    return {r[0] for r in rows}


@dataclass
class Scenario:
    step: str
    home: Path
    env: dict[str, str]
    staging_wait: bool = False   # export: kill once the staging folder holds a file
    delay_s: float = 0.0         # after STEP_START
    killed_after_s: float | None = None
    step_events_at_kill: set[str] = field(default_factory=set)
    leftovers_after_kill: list[str] = field(default_factory=list)
    rerun: subprocess.CompletedProcess | None = None
    error: BaseException | None = None


def _kill_during(sc: Scenario) -> None:
    before = _run_dbs(sc.env)
    started = time.monotonic()
    proc = subprocess.Popen([RECON, "run", "--date", D], env=sc.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    # drain the pipe so the child never blocks on a full one
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    exports = sc.home / "exports"
    db = None
    try:
        deadline = started + RUN_TIMEOUT_S
        seen_start = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"run ended before {sc.step} started:\n" + "".join(out)[-3000:]
            if db is None:
                new = _run_dbs(sc.env) - before
                db = next(iter(new)) if new else None
            if db and seen_start is None and "STEP_START" in _step_events(db, sc.step):
                seen_start = time.monotonic()
            if seen_start is not None:
                if sc.staging_wait:
                    staged = [p for p in exports.glob(f".{D}-*/*") if p.is_file()] if exports.exists() else []
                    if staged:
                        break
                elif time.monotonic() - seen_start >= sc.delay_s:
                    break
            time.sleep(0.01)
        else:
            pytest.fail(f"{sc.step} never reached within {RUN_TIMEOUT_S}s")
        os.killpg(proc.pid, signal.SIGKILL)
        sc.killed_after_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=30)
        reader.join(timeout=10)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, "".join(out)[-2000:])
    sc.step_events_at_kill = _step_events(db, sc.step)
    if exports.exists():
        sc.leftovers_after_kill = sorted(p.name for p in exports.iterdir() if p.name.startswith("."))


def _recon_run(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([RECON, "run", "--date", D], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)


def _scenario(sc: Scenario) -> None:
    try:
        _kill_during(sc)
        sc.rerun = _recon_run(sc.env)
    except BaseException as exc:  # noqa: BLE001 - reported by the main thread
        sc.error = exc


def warehouse_snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every raw/core/recon table as sorted rows, wall-clock columns left out."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_schema, table_name FROM information_schema.tables "
                             "WHERE table_schema IN ('raw', 'state', 'core', 'recon') AND table_type = 'BASE TABLE' "
                             "ORDER BY 1, 2").fetchall()
        snap = {}
        for schema, table in tables:
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
                "ORDER BY ordinal_position", [schema, table]).fetchall() if c not in WALL_CLOCK_COLUMNS]
            select = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
            rows = con.execute(f'SELECT {select} FROM "{schema}"."{table}"').fetchall()
            snap[f"{schema}.{table}"] = sorted(rows, key=lambda r: tuple((v is None, v or "") for v in r))
        return snap
    finally:
        con.close()


def export_state(home: Path) -> tuple[list[str], set[str], bytes, pl.DataFrame]:
    exports = home / "exports"
    folder = exports / D
    return (sorted(p.name for p in exports.iterdir()), {p.name for p in folder.iterdir()},
            (folder / "discrepancies.csv").read_bytes(), pl.read_parquet(folder / "discrepancies.parquet"))


def test_kill9_at_any_step_then_rerun_equals_a_clean_run(tmp_path, demo_world, manifest, emulator):
    from pipelines.demo.emulator import WmsEmulator, WmsWorld

    slow = WmsEmulator(WmsWorld.load(demo_world), tenant_id=manifest["tenant_id"], token=manifest["token"],
                       latency_seconds=WMS_LATENCY_S)
    slow.start()
    try:
        clean_home = tmp_path / "clean"
        clean_env = _env(clean_home, demo_world, manifest, emulator.base_url)
        scenarios = [
            Scenario("wms_returns", tmp_path / "k_wms", _env(tmp_path / "k_wms", demo_world, manifest, slow.base_url),
                     delay_s=2 * WMS_LATENCY_S),
            Scenario("core__rma_lines", tmp_path / "k_core",
                     _env(tmp_path / "k_core", demo_world, manifest, emulator.base_url)),
            Scenario("recon__discrepancy_detections", tmp_path / "k_rules",
                     _env(tmp_path / "k_rules", demo_world, manifest, emulator.base_url)),
            Scenario("exports__finance_export", tmp_path / "k_export",
                     _env(tmp_path / "k_export", demo_world, manifest, emulator.base_url), staging_wait=True),
        ]
        clean: dict = {}
        clean_thread = threading.Thread(target=lambda: clean.setdefault("run", _recon_run(clean_env)))
        threads = [threading.Thread(target=_scenario, args=(sc,)) for sc in scenarios]
        for t in [clean_thread, *threads]:
            t.start()
        for t in [clean_thread, *threads]:
            t.join(timeout=2 * RUN_TIMEOUT_S + 60)
    finally:
        slow.stop()

    assert clean["run"].returncode == 0, clean["run"].stderr[-3000:]
    expected_tables = warehouse_snapshot(clean_home / "warehouse.duckdb")
    expected_export = export_state(clean_home)
    assert expected_export[0] == [D] and expected_export[1] == EXPORT_FILES
    assert expected_tables["recon.discrepancy_detections"], "the clean run found the world's discrepancies"

    lines, problems = [], []
    for sc in scenarios:
        if sc.error is not None:
            problems.append(f"{sc.step}: {sc.error!r}")
            continue
        # the kill happened while the step ran (it neither succeeded nor failed)
        if not {"STEP_SUCCESS", "STEP_FAILURE"}.isdisjoint(sc.step_events_at_kill):
            problems.append(f"{sc.step}: killed only after the step ended {sorted(sc.step_events_at_kill)}")
        if not sc.rerun or sc.rerun.returncode != 0:
            problems.append(f"{sc.step}: rerun failed: {sc.rerun and sc.rerun.stderr[-2000:]}")
            continue
        tables = warehouse_snapshot(sc.home / "warehouse.duckdb")
        differing = sorted(t for t in expected_tables.keys() | tables.keys()
                           if tables.get(t) != expected_tables.get(t))
        doubled = sorted(t for t in differing if len(tables.get(t, [])) > len(expected_tables.get(t, [])))
        names, files, csv, parquet = export_state(sc.home)
        export_ok = (names == [D] and files == EXPORT_FILES and csv == expected_export[2]
                     and parquet.equals(expected_export[3]))
        if differing:
            problems.append(f"{sc.step}: tables differ from the clean run: {differing} (more rows: {doubled})")
        if not export_ok:
            problems.append(f"{sc.step}: export differs: folder {names}, files {sorted(files)}, "
                            f"csv equal {csv == expected_export[2]}, parquet equal {parquet.equals(expected_export[3])}")
        left = f" (left by the kill: {', '.join(sc.leftovers_after_kill)})" if sc.leftovers_after_kill else ""
        lines.append(f"killed during {sc.step:<31} after {sc.killed_after_s:5.1f}s -> rerun "
                     f"{'ok' if sc.rerun.returncode == 0 else 'FAILED'}, "
                     f"tables {'equal' if not differing else 'DIFFER'}, "
                     f"export {'equal' if export_ok else 'DIFFERS'}{left}")
    print("\n" + "\n".join(lines))
    assert not problems, "\n".join(problems)
    # the export kill really interrupted a write: its staging folder was there, and is gone now
    export_sc = scenarios[-1]
    assert any(n.startswith(f".{D}-") for n in export_sc.leftovers_after_kill)
