"""Dagster resources, built from the environment settings."""
from __future__ import annotations

import os
from typing import Any

from pipelines.settings import Settings, load_settings


def _secret(name: str, value: str, env: dict[str, str]) -> Any:
    import dagster as dg

    from_process_env = os.environ.get(name)
    return dg.EnvVar(name) if from_process_env and from_process_env == value == env.get(name) else value


def build_resources(settings: Settings | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    from pipelines.resources.config import ReconConfigResource
    from pipelines.resources.exports import ExportDirResource
    from pipelines.resources.refund_ledger import RefundLedgerResource
    from pipelines.resources.storefront import StorefrontResource
    from pipelines.resources.warehouse import WarehouseResource
    from pipelines.resources.wms import WmsClientResource

    env = dict(os.environ) if env is None else env
    settings = settings or load_settings(env)
    return {
        "warehouse": WarehouseResource(path=str(settings.warehouse)),
        "recon_config": ReconConfigResource(config_path=str(settings.config_path)),
        "export_dir": ExportDirResource(path=str(settings.export_dir)),
        "wms": WmsClientResource(
            base_url=settings.oplog_base_url,
            tenant_id=settings.oplog_tenant_id,
            # Secrets set in the environment stay EnvVar references, so the Dagster UI shows the
            # variable's name, never its value. The demo defaults are not secrets.
            token=_secret("OPLOG_TOKEN", settings.oplog_token, env),
        ),
        "storefront": StorefrontResource(
            db_url=_secret("STOREFRONT_DB_URL", settings.storefront_db_url, env),
            table_prefix=settings.storefront_table_prefix,
            timezone=settings.storefront_timezone,
        ),
        "refund_ledger": RefundLedgerResource(path=str(settings.refund_ledger_path)),
    }
