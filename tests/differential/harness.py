"""Run the pipeline's real assets (our SQL and connectors, no checks, no exports) on one world, fast.

``run_world(world_dir, home, business_date)`` starts a WMS emulator over the world, points the
settings at it (the same variables as tests/conftest.py ``make_env``) and materialises, in one
in-process Dagster run on an ephemeral instance, every asset upstream of (and including)
``recon/discrepancy_detections``; the asset checks and the finance export are left out - they
judge nothing the discrepancies depend on and cost most of the time. Returns the rows of
``recon.discrepancy_detections`` for the business date as dicts.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from datetime import date
from pathlib import Path

DETECTION_COLUMNS = ["rule", "order_reference", "order_line_reference", "rma_reference", "return_reference",
                     "sku", "refund_reference", "quantity_gap", "amount_at_risk", "currency", "details"]

_ENV_KEYS = ("RECON_HOME", "OPLOG_BASE_URL", "OPLOG_TENANT_ID", "OPLOG_TOKEN", "STOREFRONT_DB_URL",
             "REFUND_LEDGER_PATH", "RECON_WAREHOUSE", "RECON_EXPORT_DIR", "RECON_CONFIG", "STOREFRONT_TIMEZONE",
             "STOREFRONT_TABLE_PREFIX", "PAYMENTS_API_BASE", "PAYMENTS_API_KEY",
             "RMA_PLATFORM_URL", "RMA_PLATFORM_TOKEN", "OMS_RETURNS_ENABLED")  # cleared first: the defaults (config, UTC storefront, oc_) apply


TESTS_DIR = Path(__file__).resolve().parents[1]
_ASSETS = None


def _instance():
    """A fresh ephemeral (in-memory) Dagster instance per world: cheap once the process is warm (~0.1 s), and
    a shared one would make every run slower as its event log grows (upstream data versions are looked up)."""
    import dagster as dg
    return dg.DagsterInstance.ephemeral()


def _assets():
    """The asset definitions of the code location, without checks (built once per process)."""
    global _ASSETS
    if _ASSETS is None:
        import dagster as dg
        from pipelines.definitions import build_definitions

        defs = build_definitions()
        target = dg.AssetKey(["recon", "discrepancy_detections"])
        assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
        _ASSETS = (assets, target, None)
    return _ASSETS


def run_world(world: Path, home: Path, business_date: date) -> list[dict]:
    import dagster as dg
    from pipelines.demo.emulator import WmsEmulator, WmsWorld
    from pipelines.resources import build_resources
    from pipelines.settings import load_settings

    world, home = Path(world), Path(home)
    manifest = json.loads((world / "manifest.json").read_text())
    emu = WmsEmulator(WmsWorld.load(world), tenant_id=manifest["tenant_id"], token=manifest["token"])
    emu.start()
    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    try:
        if str(TESTS_DIR) not in sys.path:  # run as `python -m tests.differential.run` too
            sys.path.insert(0, str(TESTS_DIR))
        from conftest import make_env

        env = make_env(home, world, manifest, emu.base_url)
        for k in _ENV_KEYS:
            os.environ.pop(k, None)
        os.environ.update(env)
        settings = load_settings()
        assets, target, _ = _assets()
        selection = (dg.AssetSelection.all(include_sources=False)
                     - dg.AssetSelection.assets(target).downstream(include_self=False)).without_checks()
        logging.getLogger("dagster").setLevel(logging.ERROR)
        result = dg.materialize(assets, resources=build_resources(settings), partition_key=business_date.isoformat(),
                                instance=_instance(), selection=selection, raise_on_error=True,
                                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
        assert result.success
        from pipelines.resources.warehouse import connect

        con = connect(settings.warehouse, read_only=True)
        try:
            rows = con.execute(f"SELECT {', '.join(DETECTION_COLUMNS)} FROM recon.discrepancy_detections "
                               "WHERE business_date = $d", {"d": business_date}).fetchall()
        finally:
            con.close()
        return [dict(zip(DETECTION_COLUMNS, r)) for r in rows]
    finally:
        emu.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
