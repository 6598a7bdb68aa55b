"""The GraphQL RMA order platform (sources.md section 5.1) through ``gql`` with its requests
transport: ``POST <RMA_PLATFORM_URL>/graphql`` with the bearer token, the ``rmaOrders`` Relay
connection paged by cursor (``first`` 100, ``after``), incremental on ``updatedAt``
(``filter.updatedAtGte``). The transport's retries (urllib3's, POST included) take 429 and 5xx
answers with backoff. A 200 answer with ``errors`` is a failure of the query, never an empty
result; so is a query the platform's schema rejects.

Each node is validated by ``pipelines/records/rma_platform.RmaOrder``: a bad one becomes a reject
(reason + the fields the model names: never contacts or comments), never stopping the others. A
failure of the source is ``SourceUnavailable`` with a one-line reason that never holds the token.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import dagster as dg

from pipelines.errors import SourceUnavailable
from pipelines.records.base import payload, validate
from pipelines.records.rma_platform import RmaOrder
from pipelines.resources.secrets import reveal

PAGE_SIZE = 100

# Only what the reconciliation reads: contacts (customer data) and comments are never asked for.
RMA_ORDERS_QUERY = """
query RmaOrders($first: Int!, $after: String, $filter: RmaOrderFilter) {
  rmaOrders(first: $first, after: $after, filter: $filter) {
    edges {
      cursor
      node {
        id returnReference externalReference receivedAt issuedAt updatedAt
        expectedResolution processingStatus deliveryStatus financialStatus fulfillmentStatus currency
        lines { id sku quantity reason productState lineState orderLineReference }
        linkedOrders { orderReference externalReference }
        shipments { trackingNumber carrier deliveryStatus }
        financialResolutions { id type amount currency status }
        statusHistory { dimension status at }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@dataclass
class PlatformRead:
    orders: list[RmaOrder] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)   # record_key, reason, payload, grain columns
    pages: int = 0


def iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=timezone.utc)
    return instant.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class RmaPlatformClient:
    def __init__(self, base_url: str, token: str, *, retries: int = 5, backoff_factor: float = 0.2,
                 timeout_s: int = 30, page_size: int = PAGE_SIZE):
        from gql import Client
        from gql.transport.requests import RequestsHTTPTransport

        self.url = base_url.rstrip("/") + "/graphql"
        self.page_size = page_size
        transport = RequestsHTTPTransport(url=self.url, headers={"Authorization": f"Bearer {token}"},
                                          timeout=timeout_s, retries=retries, retry_backoff_factor=backoff_factor,
                                          retry_status_forcelist=(429, 500, 502, 503, 504))
        self._client = Client(transport=transport, fetch_schema_from_transport=False)

    def read(self, updated_gte: datetime | None, progress: Callable[[int, int], None] | None = None,
             query: str = RMA_ORDERS_QUERY) -> PlatformRead:
        """Every RMA order updated at or after ``updated_gte`` (None: all), validated."""
        from gql import gql

        document = gql(query)
        out = PlatformRead()
        after = None
        seen: set[str] = set()
        with self._client as session:
            while True:
                variables: dict[str, Any] = {"first": self.page_size, "after": after}
                if updated_gte is not None:
                    variables["filter"] = {"updatedAtGte": iso(updated_gte)}
                data = self._execute(session, document, variables, out.pages + 1)
                connection = (data or {}).get("rmaOrders") or {}
                edges = connection.get("edges") or []
                out.pages += 1
                for edge in edges:
                    self._take((edge or {}).get("node"), out, seen)
                if progress:
                    progress(out.pages, len(out.orders) + len(out.rejects))
                info = connection.get("pageInfo") or {}
                if not info.get("hasNextPage") or not edges:
                    break
                after = info.get("endCursor")
                if not after:
                    raise SourceUnavailable(f"RMA platform at {self.url}: page {out.pages} says there is a next "
                                            "page but gives no endCursor")
        return out

    def _execute(self, session, document, variables: dict, page: int) -> dict:
        import requests
        from gql.transport.exceptions import TransportError, TransportQueryError, TransportServerError
        from graphql import GraphQLError

        try:
            return session.execute(document, variable_values=variables)
        except TransportQueryError as exc:  # a 200 with errors: a failure of the query
            errors = exc.errors or []
            first = errors[0].get("message") if errors and isinstance(errors[0], dict) else str(exc)
            raise SourceUnavailable(f"RMA platform at {self.url}: the rmaOrders query failed on page {page}: "
                                    f"{str(first).splitlines()[0][:200]}") from None
        except TransportServerError as exc:
            code = getattr(exc, "code", None)
            if code == 401:
                raise SourceUnavailable(f"RMA platform at {self.url} refused the token (401)") from None
            raise SourceUnavailable(f"RMA platform at {self.url}: HTTP {code} on page {page} after the "
                                    "transport's retries") from None
        except (requests.RequestException, TransportError, GraphQLError, ValueError) as exc:
            raise SourceUnavailable(f"RMA platform at {self.url}: {type(exc).__name__} on page {page} "
                                    "after the transport's retries") from None

    def _take(self, node: Any, out: PlatformRead, seen: set[str]) -> None:
        record, reason = validate(RmaOrder, node)
        if record is not None:
            if record.id in seen:  # a node moving between pages while paging: read once
                return
            seen.add(record.id)
            out.orders.append(record)
            return
        item = node if isinstance(node, dict) else {}
        linked = item.get("linkedOrders") if isinstance(item.get("linkedOrders"), list) else []
        first = linked[0] if linked and isinstance(linked[0], dict) else {}
        order = first.get("orderReference")
        ref = item.get("returnReference")
        out.rejects.append({
            "record_key": str(item.get("id") or ref or "(no id)")[:100], "reason": reason,
            "payload": payload(RmaOrder, node),
            "order_reference": order.strip()[:100] if isinstance(order, str) and order.strip() else None,
            "rma_reference": ref.strip()[:100] if isinstance(ref, str) and ref.strip() else None})


def as_rows(order: RmaOrder) -> tuple[dict, list[dict], list[dict]]:
    """An RMA order as its raw.rma_platform_orders row, its lines and its status history."""
    head = {"rma_id": order.id, "updated_at": order.updated_at, "return_reference": order.return_reference,
            "external_reference": order.external_reference, "order_reference": order.order_reference,
            "tracking_id": order.tracking_number, "expected_resolution": order.expected_resolution,
            "processing_status": order.processing_status, "delivery_status": order.delivery_status,
            "financial_status": order.financial_status, "fulfillment_status": order.fulfillment_status,
            "currency": order.currency, "refunded_amount": order.refunded_amount(),
            "received_at": order.received_at, "issued_at": order.issued_at}
    lines = [{"rma_id": order.id, "updated_at": order.updated_at, "line_id": ln.id, "sku": ln.sku,
              "quantity": ln.quantity, "line_state": ln.line_state, "order_line_reference": ln.order_line_reference}
             for ln in order.lines]
    history = [{"rma_id": order.id, "updated_at": order.updated_at, "dimension": c.dimension, "status": c.status,
                "changed_at": c.at} for c in order.status_history]
    return head, lines, history


class RmaPlatformResource(dg.ConfigurableResource):
    """The GraphQL RMA platform (``RMA_PLATFORM_URL``, ``RMA_PLATFORM_TOKEN``); ``url`` ``none``: the
    source is disabled. The token is a secret handle (pipelines/resources/secrets.py)."""

    url: str
    token: str

    @property
    def enabled(self) -> bool:
        return self.url.strip().lower() != "none"

    def client(self, *, retries: int, timeout_s: int) -> RmaPlatformClient:
        return RmaPlatformClient(self.url, reveal(self.token), retries=retries, timeout_s=timeout_s)
