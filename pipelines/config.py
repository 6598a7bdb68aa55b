"""The reconciliation configuration file (thresholds, severities, status maps).

``load_config(path)`` reads YAML (``RECON_CONFIG`` or the project default) and
validates it; any problem raises ``ConfigError`` with a one-line reason.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from pipelines.settings import DEFAULT_CONFIG_PATH

RULES = (
    "DUPLICATE_REFUND", "OVER_REFUND", "REFUND_WITHOUT_RECEIPT", "REFUND_FOR_DAMAGED_GOODS",
    "RECEIVED_NOT_REFUNDED", "QUANTITY_MISMATCH", "RMA_NOT_RECEIVED", "STATUS_MISMATCH",
    "ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH", "RESTOCK_MISMATCH", "ORPHAN_REFUND",
    "UNSYNCED_STOCK_ADJUSTMENT", "REFUND_CURRENCY_MISMATCH",
    "CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE", "PAYMENT_AMOUNT_MISMATCH",
)
# Rules that judge the payment provider's refunds: they find nothing for a date the provider was
# not read for (PAYMENTS_API_BASE=none), rather than call every credit note unpaid.
PAYMENT_RULES = ("CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE", "PAYMENT_AMOUNT_MISMATCH")
SEVERITIES = ("HIGH", "MEDIUM", "LOW")
CANONICAL_STATUSES = ("REQUESTED", "AUTHORIZED", "COMPLETED", "REJECTED", "CANCELED")
CANONICAL_ACTIONS = ("REFUNDED", "CREDIT_ISSUED", "REPLACEMENT_SENT", "WAITING_FOR_RETURN")


class ConfigError(ValueError):
    """The configuration file is missing, unreadable or invalid."""


@dataclass(frozen=True)
class ReconConfig:
    thresholds: dict[str, float]
    store_currency: str
    severities: dict[str, str]
    rma_status_map: dict[str, str]
    rma_action_map: dict[str, str]
    non_refund_actions: tuple[str, ...]
    tracking_pattern: str
    wms: dict[str, float]
    partitions_start_date: str
    schedule_cron: str
    schedule_timezone: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def threshold(self, name: str) -> float:
        return self.thresholds[name]

    @property
    def retention_days(self) -> int | None:
        """``retention.days``: a positive whole number of days, or None (keep everything)."""
        value = (self.raw.get("retention") or {}).get("days")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"retention.days must be a whole number of days >= 1 or null, got {value!r}")
        return value

    @property
    def working_dates(self) -> int | None:
        """``retention.working_dates``: how many of the newest evaluated business dates the working
        tables (canonical and matching) keep, a whole number >= 1 (default 1), or None (every date)."""
        section = self.raw.get("retention") or {}
        value = section.get("working_dates", 1)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"retention.working_dates must be a whole number of dates >= 1 or null, got {value!r}")
        return value

    @property
    def payments(self) -> dict[str, float]:
        """The ``payments`` section (polling of the provider), validated in ``load_config``."""
        return {k: float(v) for k, v in (self.raw.get("payments") or {}).items()}

    @property
    def rma_platform(self) -> dict[str, float]:
        """The ``rma_platform`` section (polling of the GraphQL platform), validated in ``load_config``."""
        return {k: float(v) for k, v in (self.raw.get("rma_platform") or {}).items()}

    @property
    def amount_tolerance(self) -> Decimal:
        """The money tolerance as an exact decimal (the YAML text, not its binary float)."""
        return _decimal(self.raw["thresholds"]["amount_tolerance"])

    def sql_params(self) -> dict[str, Any]:
        """Named parameters every rule SQL file may use."""
        t = self.thresholds
        return {
            # money thresholds reach SQL as DECIMAL, never DOUBLE: 0.01 over is within 0.01
            "amount_tolerance": self.amount_tolerance,
            "refund_sla_days": int(t["refund_sla_days"]),
            "transit_days": int(t["transit_days"]),
            "status_lag_days": int(t["status_lag_days"]),
            "restock_lag_days": int(t["restock_lag_days"]),
            "stock_lookback_days": int(t["stock_lookback_days"]),
            "payment_match_days": int(t["payment_match_days"]),
            "payment_lag_days": int(t["payment_lag_days"]),
            "store_currency": self.store_currency,
        }


_REQUIRED_THRESHOLDS = ("amount_tolerance", "refund_sla_days", "transit_days", "status_lag_days",
                        "restock_lag_days", "stock_lookback_days", "payment_match_days", "payment_lag_days")


def load_config(path: str | Path | None = None) -> ReconConfig:
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"configuration file {path} must be a mapping")
    # A user file may override only some keys: merge onto the defaults.
    if path != DEFAULT_CONFIG_PATH:
        base = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
        raw = _deep_merge(base, raw)
    for section in ("thresholds", "severities", "rma_status_map", "rma_action_map", "wms", "retention", "payments",
                    "rma_platform"):
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise ConfigError(f"{section} must be a mapping (key: value lines), got a {type(raw[section]).__name__}")

    thresholds = raw.get("thresholds") or {}
    for name in _REQUIRED_THRESHOLDS:
        value = thresholds.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"thresholds.{name} must be a non-negative number, got {value!r}")
    severities = {str(k).upper(): str(v).upper() for k, v in (raw.get("severities") or {}).items()}
    unknown = sorted(set(severities) - set(RULES))
    if unknown:
        raise ConfigError(f"severities: unknown rule(s) {', '.join(unknown)}")
    for rule in RULES:
        if severities.get(rule) not in SEVERITIES:
            raise ConfigError(f"severities.{rule} must be one of {'/'.join(SEVERITIES)}, got {severities.get(rule)!r}")
    status_map = {str(k).strip().lower(): str(v).upper() for k, v in (raw.get("rma_status_map") or {}).items()}
    bad = {k: v for k, v in status_map.items() if v not in CANONICAL_STATUSES}
    if bad or not status_map:
        raise ConfigError(f"rma_status_map must map names to {'/'.join(CANONICAL_STATUSES)}, bad: {bad}")
    action_map = {str(k).strip().lower(): str(v).upper() for k, v in (raw.get("rma_action_map") or {}).items()}
    bad = {k: v for k, v in action_map.items() if v not in CANONICAL_ACTIONS}
    if bad or not action_map:
        raise ConfigError(f"rma_action_map must map names to {'/'.join(CANONICAL_ACTIONS)}, bad: {bad}")
    non_refund = tuple(str(a).upper() for a in raw.get("non_refund_actions") or ())
    if set(non_refund) - set(CANONICAL_ACTIONS):
        raise ConfigError(f"non_refund_actions must be canonical actions, got {list(non_refund)}")
    pattern = raw.get("tracking_pattern")
    try:
        if not isinstance(pattern, str) or re.compile(pattern).groups < 1:
            raise ConfigError("tracking_pattern must be a regular expression with one capture group")
    except re.error as exc:
        raise ConfigError(f"tracking_pattern is not a valid regular expression: {exc}") from None
    wms = raw.get("wms") or {}
    for key, value in wms.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"wms.{key} must be a non-negative number, got {value!r}")
    for section in ("payments", "rma_platform"):
        for key, value in (raw.get(section) or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{section}.{key} must be a non-negative number, got {value!r}")
    currency = str(raw.get("store_currency") or "")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"store_currency must be an ISO currency code, got {currency!r}")
    schedule = raw.get("schedule") or {}
    config = ReconConfig(
        thresholds={k: float(v) for k, v in thresholds.items()},
        store_currency=currency,
        severities=severities,
        rma_status_map=status_map,
        rma_action_map=action_map,
        non_refund_actions=non_refund,
        tracking_pattern=pattern,
        wms={k: float(v) for k, v in wms.items()},
        partitions_start_date=str((raw.get("partitions") or {}).get("start_date", "2024-01-01")),
        schedule_cron=str(schedule.get("cron", "0 6 * * *")),
        schedule_timezone=str(schedule.get("timezone", "UTC")),
        raw=raw,
    )
    config.retention_days  # noqa: B018 - validated now, not halfway through a run
    config.working_dates  # noqa: B018
    return config


def _decimal(value: Any) -> Decimal:
    """A YAML number as the decimal it was written as (0.01 -> Decimal('0.01'))."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"not a decimal number: {value!r}") from None


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("rma_status_map", "rma_action_map"):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
