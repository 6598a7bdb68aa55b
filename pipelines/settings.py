"""Runtime settings: every environment variable of the interface spec, read in one place.

Unset variables fall back to the embedded demo defaults (the demo world under
``$RECON_HOME/demo`` and the emulator on its default port).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "default_config.yaml"

DEMO_TENANT_ID = "demo-tenant"
DEMO_TOKEN = "demo-token-3f9c2a71"
DEMO_EMULATOR_PORT = 8765
DEMO_PAYMENTS_KEY = "sk_test_demo_4c1e7b90"
DEMO_PLATFORM_TOKEN = "rma-platform-demo-token-8e21"


@dataclass(frozen=True)
class Settings:
    home: Path
    warehouse: Path
    export_dir: Path
    config_path: Path
    oplog_base_url: str
    oplog_tenant_id: str
    oplog_token: str
    storefront_db_url: str
    storefront_table_prefix: str
    refund_ledger_path: Path
    # the payment provider (Stripe-compatible); None: the source is disabled (PAYMENTS_API_BASE=none)
    payments_api_base: str | None = None
    payments_api_key: str = field(default="", repr=False)
    # the GraphQL RMA platform; None: disabled (RMA_PLATFORM_URL=none)
    rma_platform_url: str | None = None
    rma_platform_token: str = field(default="", repr=False)
    oms_returns_enabled: bool = True
    # IANA zone in which OpenCart writes its datetimes (its config_timezone)
    storefront_timezone: str = "UTC"
    # URL that receives a JSON summary after each run (Slack-compatible); None: no alert.
    # Treated as a secret (a Slack webhook URL is one): never logged, only its host.
    alert_webhook: str | None = field(default=None, repr=False)

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)

    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value not in (None, "") else None

    home = Path(get("RECON_HOME") or REPO_ROOT / ".recon").resolve()
    demo = home / "demo"
    return Settings(
        home=home,
        warehouse=Path(get("RECON_WAREHOUSE") or home / "warehouse.duckdb"),
        export_dir=Path(get("RECON_EXPORT_DIR") or home / "exports"),
        config_path=Path(get("RECON_CONFIG") or DEFAULT_CONFIG_PATH),
        oplog_base_url=(get("OPLOG_BASE_URL") or f"http://127.0.0.1:{DEMO_EMULATOR_PORT}").rstrip("/"),
        oplog_tenant_id=get("OPLOG_TENANT_ID") or DEMO_TENANT_ID,
        oplog_token=get("OPLOG_TOKEN") or DEMO_TOKEN,
        storefront_db_url=get("STOREFRONT_DB_URL") or f"sqlite:///{demo / 'storefront.sqlite'}",
        storefront_table_prefix=get("STOREFRONT_TABLE_PREFIX") or "oc_",
        refund_ledger_path=Path(get("REFUND_LEDGER_PATH") or demo / "ledger"),
        storefront_timezone=(get("STOREFRONT_TIMEZONE") or "UTC").strip() or "UTC",
        alert_webhook=get("RECON_ALERT_WEBHOOK"),
        payments_api_base=_demo_or_none(get("PAYMENTS_API_BASE")),
        payments_api_key=get("PAYMENTS_API_KEY") or DEMO_PAYMENTS_KEY,
        rma_platform_url=_demo_or_none(get("RMA_PLATFORM_URL")),
        rma_platform_token=get("RMA_PLATFORM_TOKEN") or DEMO_PLATFORM_TOKEN,
        oms_returns_enabled=_flag("OMS_RETURNS_ENABLED", get("OMS_RETURNS_ENABLED"), True),
    )


def _flag(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    from pipelines.config import ConfigError
    raise ConfigError(f"{name} must be true or false, got {value[:20]!r}")


def _demo_or_none(value: str | None) -> str | None:
    """``PAYMENTS_API_BASE`` / ``RMA_PLATFORM_URL``: unset is the demo's emulator (the WMS emulator
    serves ``/v1/`` and ``/graphql`` too), ``none`` disables the source."""
    if value is None:
        return f"http://127.0.0.1:{DEMO_EMULATOR_PORT}"
    if value.strip().lower() == "none":
        return None
    return value.strip().rstrip("/")
