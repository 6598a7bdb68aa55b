"""The GraphQL RMA order platform (sources.md section 5.1) for the demo and the tests: the schema of
``rma_platform.graphql`` executed by ``ariadne`` (``graphql-core`` underneath), so every query is
parsed and validated against the real types and enums; served on ``POST /graphql`` by the demo's
HTTP emulator (``WmsEmulator(..., rma_platform=RmaPlatformApi(...))``).

Like the platform: bearer auth (401 with a plain ``{"message"}`` body otherwise, from its gateway); ``rmaOrders(first, after, filter)`` is a Relay
connection over the orders sorted by (``updatedAt``, ``id``), ``first`` capped at 100, the cursor
opaque, ``filter.updatedAtGte`` and ``filter.processingStatus``; errors as ``{"errors": [...]}``
with HTTP 200 (a query the schema rejects too).

Faults, switchable at any time: ``fail_next(n, status)`` answers the next n requests with that
HTTP status (a 5xx or 429 storm); ``errors_next(n)`` answers them 200 with ``errors`` and no data;
``error_rate`` a random share of 503s; ``inject(nodes)`` serves raw (possibly malformed) nodes.
"""
from __future__ import annotations

import base64
import json
import random
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("rma_platform.graphql")
MAX_FIRST = 100


def _parse_instant(value: str) -> datetime:
    dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _cursor(node: dict) -> str:
    return base64.urlsafe_b64encode(f"{node.get('updatedAt')}|{node.get('id')}".encode()).decode()


class RmaPlatformApi:
    def __init__(self, orders: list[dict], *, token: str, error_rate: float = 0.0, seed: int = 0):
        from ariadne import QueryType, ScalarType, make_executable_schema

        self._token = token
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.error_rate = error_rate
        self._storm: list[int] = []
        self._errors = 0
        self.orders = list(orders)
        self.requests = 0
        self.pages: list[dict] = []   # the arguments and node ids of every page served (for the tests)

        query = QueryType()
        datetime_scalar = ScalarType("DateTime")

        @datetime_scalar.serializer
        def _serialize(value):
            return value if isinstance(value, str) else value.isoformat()

        @datetime_scalar.value_parser
        def _parse(value):
            return _parse_instant(value)

        query.set_field("rmaOrders", self._rma_orders)
        query.set_field("rmaOrder", self._rma_order)
        self.schema = make_executable_schema(SCHEMA_PATH.read_text(encoding="utf-8"), query, datetime_scalar)

    # ------------------------------------------------------------------ faults
    def fail_next(self, count: int, status: int) -> None:
        with self._lock:
            self._storm.extend([status] * count)

    def errors_next(self, count: int) -> None:
        with self._lock:
            self._errors += count

    def inject(self, nodes: list[Any]) -> None:
        with self._lock:
            self.orders.extend(nodes)

    # ------------------------------------------------------------------ resolvers
    def _sorted(self) -> list[dict]:
        def key(node: Any):
            try:
                return (_parse_instant(node["updatedAt"]), str(node.get("id")))
            except (KeyError, TypeError, ValueError):
                return (datetime.min.replace(tzinfo=timezone.utc), str(node.get("id") if isinstance(node, dict) else ""))
        return sorted((o for o in self.orders if isinstance(o, dict)), key=key)

    def _rma_orders(self, _obj, _info, first: int, after: str | None = None, filter: dict | None = None):
        from graphql import GraphQLError

        if first < 1:
            raise GraphQLError("first must be at least 1")
        first = min(first, MAX_FIRST)
        nodes = self._sorted()
        flt = filter or {}
        if flt.get("updatedAtGte") is not None:
            gte = flt["updatedAtGte"]
            nodes = [n for n in nodes if _safe_instant(n.get("updatedAt")) is None or _safe_instant(n.get("updatedAt")) >= gte]
        if flt.get("processingStatus"):
            wanted = set(flt["processingStatus"])
            nodes = [n for n in nodes if n.get("processingStatus") in wanted]
        if after:
            cursors = [_cursor(n) for n in nodes]
            if after not in cursors:
                raise GraphQLError(f"unknown cursor {after!r}")
            nodes = nodes[cursors.index(after) + 1:]
        page = nodes[:first]
        self.pages.append({"first": first, "after": after, "updated_at_gte": flt.get("updatedAtGte"),
                           "ids": [n.get("id") for n in page]})
        edges = [{"cursor": _cursor(n), "node": n} for n in page]
        return {"edges": edges, "pageInfo": {"hasNextPage": len(nodes) > first,
                                             "endCursor": edges[-1]["cursor"] if edges else None}}

    def _rma_order(self, _obj, _info, id: str | None = None, externalId: str | None = None):  # noqa: A002, N803
        for node in self.orders:
            if isinstance(node, dict) and ((id and node.get("id") == id)
                                           or (externalId and node.get("externalId") == externalId)):
                return node
        return None

    # ------------------------------------------------------------------ HTTP
    def handle(self, method: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        from ariadne import graphql_sync

        def answer(status: int, payload: dict) -> tuple[int, dict[str, str], bytes]:
            return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()

        with self._lock:
            self.requests += 1
            auth = headers.get("Authorization") or ""
            if not (auth.startswith("Bearer ") and auth[7:] == self._token):
                # as the platform's gateway does: a plain error body, not a GraphQL result
                return answer(401, {"message": "Unauthorized: a valid bearer token is required"})
            if self._storm:
                status = self._storm.pop(0)
                return answer(status, {"message": f"emulated {status}"})
            if self.error_rate and self._rng.random() < self.error_rate:
                return answer(503, {"message": "emulated 503"})
            if self._errors:
                self._errors -= 1
                return answer(200, {"data": None, "errors": [{"message": "emulated resolver failure: upstream "
                                                                         "database timeout"}]})
            if method != "POST":
                return answer(405, {"errors": [{"message": "POST a JSON body {query, variables}"}]})
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return answer(400, {"errors": [{"message": "the body is not JSON"}]})
            _, result = graphql_sync(self.schema, data, debug=False)
            return answer(200, result)


def _safe_instant(value: Any) -> datetime | None:
    try:
        return _parse_instant(value)
    except (TypeError, ValueError):
        return None
