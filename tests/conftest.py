"""Shared fixtures: a generated demo world, a live WMS emulator over it, and settings that
point every source at them with the warehouse and exports under tmp_path."""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

WORLD_END = date(2026, 3, 31)
WORLD_SEED = 11
WORLD_RETURNS = 300


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory) -> Path:
    from pipelines.demo.world import generate_world

    out = tmp_path_factory.mktemp("world")
    generate_world(out, seed=WORLD_SEED, n_returns=WORLD_RETURNS, end_date=WORLD_END)
    return out


@pytest.fixture(scope="session")
def manifest(demo_world) -> dict:
    return json.loads((demo_world / "manifest.json").read_text())


@pytest.fixture(scope="session")
def ground_truth(demo_world) -> dict:
    return json.loads((demo_world / "ground_truth.json").read_text())


@pytest.fixture
def emulator(demo_world, manifest):
    from pipelines.demo.emulator import WmsEmulator, WmsWorld

    emu = WmsEmulator(WmsWorld.load(demo_world), tenant_id=manifest["tenant_id"], token=manifest["token"])
    emu.start()
    yield emu
    emu.stop()


def make_env(home: Path, world: Path, manifest: dict, base_url: str, **extra: str) -> dict[str, str]:
    from pipelines.settings import DEMO_PAYMENTS_KEY, DEMO_PLATFORM_TOKEN

    env = {
        "RECON_HOME": str(home),
        "OPLOG_BASE_URL": base_url,
        "OPLOG_TENANT_ID": manifest["tenant_id"],
        "OPLOG_TOKEN": manifest["token"],
        "STOREFRONT_DB_URL": f"sqlite:///{world / 'storefront.sqlite'}",
        "REFUND_LEDGER_PATH": str(world / "ledger"),
        # the emulator serves the payment provider on /v1/ when the world has one; else disabled
        "PAYMENTS_API_BASE": base_url if (world / "payments").is_dir() else "none",
        "PAYMENTS_API_KEY": str(manifest.get("payments_key") or DEMO_PAYMENTS_KEY),
        # ... and the GraphQL RMA platform on /graphql when the world has one
        "RMA_PLATFORM_URL": base_url if (world / "rma_platform").is_dir() else "none",
        "RMA_PLATFORM_TOKEN": str(manifest.get("rma_platform_token") or DEMO_PLATFORM_TOKEN),
    }
    env.update(extra)
    return env


@pytest.fixture
def recon_env(tmp_path, demo_world, manifest, emulator, monkeypatch):
    """Process environment for a run against the demo world; returns the Settings."""
    from pipelines.settings import load_settings

    env = make_env(tmp_path / "home", demo_world, manifest, emulator.base_url)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return load_settings()


@contextmanager
def world_runs(home: Path, world: Path, manifest: dict, dates: list[date]):
    """Runs the given dates against the world (WMS emulator up, the run's environment set) and
    yields (settings, outcomes) with that environment still set; every run must succeed."""
    from pipelines.demo.emulator import WmsEmulator, WmsWorld
    from pipelines.runner import run_business_date
    from pipelines.settings import load_settings

    with WmsEmulator(WmsWorld.load(world), tenant_id=manifest["tenant_id"], token=manifest["token"]) as emu, \
            pytest.MonkeyPatch.context() as mp:
        for key, value in make_env(home, world, manifest, emu.base_url).items():
            mp.setenv(key, value)
        mp.delenv("DAGSTER_HOME", raising=False)
        settings = load_settings()
        outcomes = [run_business_date(d, settings=settings) for d in dates]
        for outcome in outcomes:
            assert outcome.success, outcome.reason
        yield settings, outcomes


def run_date(settings, d: date):
    """Run the daily job for one date through Dagster (ephemeral instance)."""
    from pipelines.runner import run_business_date

    return run_business_date(d, settings=settings)


def query(settings, sql: str, params: dict | None = None) -> list[tuple]:
    from pipelines.resources.warehouse import connect

    con = connect(settings.warehouse)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()
