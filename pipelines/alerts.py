"""Alerts: after each run, a short summary POSTed to ``RECON_ALERT_WEBHOOK`` as Slack-compatible
JSON (``{"text": ...}``): the date, the new HIGH discrepancies with their amounts, the totals and
where the workbook is; after a failed run, its one-line reason.

A webhook that is down never fails the run: the POST is retried with exponential backoff
(tenacity), then the failure is logged and the run goes on. The URL is a secret (a Slack webhook
URL carries its token): only its host is ever logged.
"""
from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from urllib.parse import urlsplit

import requests
import tenacity

log = logging.getLogger("recon.alerts")
ATTEMPTS = 4
TIMEOUT_S = 5.0
MAX_ITEMS = 10


def success_text(d: date, export: dict, store_currency: str) -> str:
    """From the finance export's materialisation metadata (no warehouse read)."""
    figures = export.get("ageing_and_movement") or {}
    movement = figures.get("movement", {})
    open_n = sum(v["open"] for v in figures.get("per_rule", {}).values())
    amount = sum((Decimal(v["amount"]) for v in figures.get("per_rule", {}).values()), Decimal("0"))
    new_high = export.get("new_high") or []
    lines = [f"Returns reconciliation {d}: {open_n} open discrepancies, {amount:,.2f} {store_currency} at risk; "
             f"{movement.get('new today', {}).get('count', 0)} new, "
             f"{movement.get('resolved today', {}).get('count', 0)} resolved today."]
    if new_high:
        lines.append(f"New HIGH ({len(new_high)}):")
        for item in new_high[:MAX_ITEMS]:
            lines.append(f"- {item['id']} {item['rule']} {item['amount']} {item['currency'] or ''}".rstrip()
                         + (f": {item['explanation']}" if item.get("explanation") else ""))
        if len(new_high) > MAX_ITEMS:
            lines.append(f"- and {len(new_high) - MAX_ITEMS} more")
    else:
        lines.append("No new HIGH discrepancies.")
    if export.get("workbook"):
        lines.append(f"Workbook: {export['workbook']}")
    return "\n".join(lines)


def failure_text(d: date, reason: str | None) -> str:
    return f"Returns reconciliation {d} FAILED: {reason or 'no reason recorded'}"


class _RedactPath(logging.Filter):
    """urllib3 logs each request line at DEBUG; the webhook's path and query are its secret."""

    def __init__(self, path: str, query: str = ""):
        super().__init__()
        self.path, self.query = path, query

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in (f"{self.path}?{self.query}" if self.query else "", self.path, self.query):
            if secret and secret not in ("/", "") and secret in redacted:
                redacted = redacted.replace(secret, "<webhook redacted>")
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def send(url: str | None, text: str) -> bool:
    """POST ``{"text": text}``; True when delivered. Never raises."""
    if not url:
        return False
    parts = urlsplit(url)
    host = parts.hostname or "?"
    pool_log = logging.getLogger("urllib3.connectionpool")
    if (parts.path not in ("", "/") or parts.query) and not any(
            isinstance(f, _RedactPath) and (f.path, f.query) == (parts.path, parts.query) for f in pool_log.filters):
        pool_log.addFilter(_RedactPath(parts.path, parts.query))

    @tenacity.retry(stop=tenacity.stop_after_attempt(ATTEMPTS), reraise=True,
                    wait=tenacity.wait_exponential(multiplier=0.5, max=4),
                    retry=tenacity.retry_if_exception_type(requests.RequestException))
    def post() -> None:
        response = requests.post(url, json={"text": text}, timeout=TIMEOUT_S)
        if response.status_code >= 500 or response.status_code == 429:
            raise requests.HTTPError(f"HTTP {response.status_code}")
        if response.status_code >= 400:  # a client error does not get better by retrying
            raise _Refused(f"HTTP {response.status_code}")

    try:
        post()
        return True
    except (requests.RequestException, _Refused) as exc:
        # the exception text may hold the URL: only its class and status reach the log
        status = str(exc) if isinstance(exc, (_Refused, requests.HTTPError)) else type(exc).__name__
        log.warning("alert webhook at %s not delivered after %s attempt(s): %s", host,
                    1 if isinstance(exc, _Refused) else ATTEMPTS, status)
        return False


class _Refused(Exception):
    pass
