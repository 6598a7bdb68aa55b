"""Dagster resources, built from the environment settings."""
from __future__ import annotations

import os
from typing import Any

from pipelines.resources.secrets import secret_config
from pipelines.settings import Settings, load_settings


def build_resources(settings: Settings | None = None, env: dict[str, str] | None = None) -> dict[str, Any]:
    from pipelines.resources.config import ReconConfigResource
    from pipelines.resources.exports import ExportDirResource
    from pipelines.resources.payments import PaymentsResource
    from pipelines.resources.rma_platform import RmaPlatformResource
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
            # Secrets never become config values (shown in the UI, kept in run storage), whatever
            # their origin: an EnvVar reference or a handle to the value (pipelines/resources/secrets.py).
            token=secret_config("OPLOG_TOKEN", settings.oplog_token),
        ),
        "storefront": StorefrontResource(
            db_url=secret_config("STOREFRONT_DB_URL", settings.storefront_db_url),
            table_prefix=settings.storefront_table_prefix,
            timezone=settings.storefront_timezone,
        ),
        "refund_ledger": RefundLedgerResource(path=str(settings.refund_ledger_path)),
        "payments": PaymentsResource(
            api_base=settings.payments_api_base or "none",
            api_key=secret_config("PAYMENTS_API_KEY", settings.payments_api_key),
        ),
        "rma_platform": RmaPlatformResource(
            url=settings.rma_platform_url or "none",
            token=secret_config("RMA_PLATFORM_TOKEN", settings.rma_platform_token),
        ),
    }
