"""The payment provider's refunds (sources.md section 4) through the official ``stripe`` library:
``StripeClient`` pointed at ``PAYMENTS_API_BASE``, the list endpoint through its ``raw_request``
(plain JSON: building the library's objects cost five times the rest of the read), paged by
cursor (``starting_after``), a ``created`` window, and the library's own retries
(``max_network_retries``: connection errors, 409, 5xx, and 429s the server marks
``Stripe-Should-Retry: true``) with its backoff (``Retry-After`` honoured).

Each object is validated by ``pipelines/records/payments.ProviderRefund``: a bad one becomes a
reject (reason + the fields the model names), never stopping the others. A failure of the
source (refused key, retries exhausted, unreachable) is ``SourceUnavailable`` with a one-line
reason that never holds the key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

from pipelines.errors import SourceUnavailable
from pipelines.records.base import payload, validate
from pipelines.records.payments import ProviderRefund
from pipelines.resources.secrets import reveal

PAGE_LIMIT = 100


@dataclass
class RefundRead:
    refunds: list[ProviderRefund] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)   # record_key, reason, payload
    pages: int = 0


def unix(instant: datetime) -> int:
    """Naive UTC (or aware) -> Unix seconds."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return int(instant.timestamp())


class PaymentsClient:
    def __init__(self, api_base: str, api_key: str, *, max_network_retries: int = 6, timeout_s: float = 30.0):
        import stripe

        self._stripe = stripe
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base.rstrip("/")}, max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_s))
        self.api_base = api_base.rstrip("/")

    def read(self, created_gte: datetime | None, created_lt: datetime | None,
             progress: Callable[[int, int], None] | None = None) -> RefundRead:
        """Every refund created in [created_gte, created_lt) (either bound may be open), validated."""
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        window = {}
        if created_gte is not None:
            window["gte"] = unix(created_gte)
        if created_lt is not None:
            window["lt"] = unix(created_lt)
        if window:
            params["created"] = window
        out = RefundRead()
        try:
            page = self._page(params)
            while True:
                out.pages += 1
                data = page["data"]
                for obj in data:
                    self._take(obj, out)
                if progress:
                    progress(out.pages, len(out.refunds) + len(out.rejects))
                if not page.get("has_more") or not data:
                    break
                last_id = data[-1].get("id") if isinstance(data[-1], dict) else None
                if not isinstance(last_id, str) or not last_id:
                    raise SourceUnavailable(f"payment provider at {self.api_base}: a refund without an id ends "
                                            f"page {out.pages}; the cursor cannot page past it")
                page = self._page({**params, "starting_after": last_id})
        except self._stripe.AuthenticationError:
            raise SourceUnavailable(f"payment provider at {self.api_base} refused the API key (401)") from None
        except self._stripe.StripeError as exc:
            status = getattr(exc, "http_status", None)
            kind = type(exc).__name__
            raise SourceUnavailable(f"payment provider at {self.api_base}: {kind}"
                                    + (f" (HTTP {status})" if status else "")
                                    + " after the library's retries") from None
        return out

    def _page(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of ``GET /v1/refunds`` as plain JSON: the library's request (its retries, its
        errors) without building its objects, which cost some five times the rest of the read."""
        response = self._client.raw_request("get", "/v1/refunds", **params)
        try:
            page = json.loads(response.body)
        except ValueError:
            page = None
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise SourceUnavailable(f"payment provider at {self.api_base}: page {params.get('starting_after') or 'one'} "
                                    "is not a list of refunds (HTTP 200 without a refunds list)")
        return page

    def _take(self, obj: Any, out: RefundRead) -> None:
        item = obj  # plain JSON (raw_request): a dict, or whatever the provider sent in its place
        record, reason = validate(ProviderRefund, item)
        if record is not None:
            out.refunds.append(record)
            return
        key = item.get("id") if isinstance(item, dict) else None
        meta = item.get("metadata") if isinstance(item, dict) else None
        meta = meta if isinstance(meta, dict) else {}

        def named(name: str) -> str | None:  # the grain a bad object names, when readable
            value = meta.get(name)
            return value.strip()[:100] or None if isinstance(value, str) else None

        out.rejects.append({"record_key": str(key)[:100] if key is not None else "(no id)", "reason": reason,
                            "payload": payload(ProviderRefund, item), "order_reference": named("order_id"),
                            "credit_note_number": named("credit_note_number")})


def as_row(refund: ProviderRefund) -> dict[str, Any]:
    """A provider refund as a raw.payment_refunds row (exact amount, upper-case currency)."""
    return {"refund_id": refund.id, "amount_minor": refund.amount, "amount": refund.amount_decimal,
            "currency": refund.currency, "created": refund.created, "status": refund.status,
            "payment_intent": refund.payment_intent, "charge": refund.charge, "reason": refund.reason,
            "failure_reason": refund.failure_reason, "order_id": refund.order_id,
            "credit_note_number": refund.credit_note_number}


def row_hash(row: dict[str, Any]) -> str:
    """md5 of a version's columns: a new raw row only when one of them changes."""
    import hashlib
    import json

    return hashlib.md5(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


class PaymentsResource(dg.ConfigurableResource):
    """The payment provider (``PAYMENTS_API_BASE``, ``PAYMENTS_API_KEY``); ``api_base`` ``none``:
    the source is disabled. The key is a secret handle (pipelines/resources/secrets.py)."""

    api_base: str
    api_key: str

    @property
    def enabled(self) -> bool:
        return self.api_base.strip().lower() != "none"

    def client(self, *, max_network_retries: int, timeout_s: float) -> PaymentsClient:
        return PaymentsClient(self.api_base, reveal(self.api_key), max_network_retries=max_network_retries,
                              timeout_s=timeout_s)
