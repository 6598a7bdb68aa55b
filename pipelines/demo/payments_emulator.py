"""The payment provider's refunds API, Stripe-compatible (sources.md section 4), for the demo and
the tests: ``GET /v1/refunds`` over a list of refund objects, served by the demo's HTTP emulator
(``WmsEmulator(..., payments=PaymentsApi(...))`` answers every ``/v1/`` path with it).

Like Stripe: bearer (or basic) auth with the secret key; newest first; ``limit`` 1..100 (default
10, more is a 400), ``starting_after`` (the last id of the previous page), ``created[gte|gt|lt|lte]``
in Unix seconds; ``{"object": "list", "data": [...], "has_more": ..., "url": "/v1/refunds"}``;
errors as ``{"error": {"type", "message"}}``. A 429 carries ``Stripe-Should-Retry: true``, as
Stripe's own rate-limit answers do, so the library's retries take it.

Faults, switchable at any time: ``fail_next(n, status)`` answers the next n requests with that
status (a 429 or 5xx storm); ``error_rate`` a random share of 5xx; ``inject(objects)`` serves raw
(possibly malformed) objects beside the real ones.
"""
from __future__ import annotations

import json
import random
import threading
from typing import Any
from urllib.parse import parse_qs

MAX_LIMIT = 100


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None):
    return status, {"Content-Type": "application/json", **(headers or {})}, \
        json.dumps({"error": {"type": kind, "message": message}}).encode()


class PaymentsApi:
    def __init__(self, refunds: list[dict], *, key: str, error_rate: float = 0.0, seed: int = 0):
        self._key = key
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.error_rate = error_rate
        self._storm: list[int] = []
        self.refunds = list(refunds)
        self.requests = 0
        self.pages: list[dict] = []  # the query of every page served (for the tests)

    def fail_next(self, count: int, status: int) -> None:
        with self._lock:
            self._storm.extend([status] * count)

    def inject(self, objects: list[Any]) -> None:
        with self._lock:
            self.refunds.extend(objects)

    def _authorised(self, headers: Any) -> bool:
        auth = headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            return auth[7:] == self._key
        if auth.startswith("Basic "):
            import base64
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0] == self._key
            except ValueError:
                return False
        return False

    def handle(self, method: str, path: str, query: str, headers: Any) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests += 1
            if not self._authorised(headers):
                return _error(401, "invalid_request_error", "Invalid API Key provided")
            if self._storm:
                status = self._storm.pop(0)
                extra = {"Stripe-Should-Retry": "true"} if status == 429 else {}
                kind = "rate_limit_error" if status == 429 else "api_error"
                return _error(status, kind, f"emulated {status}", extra)
            if self.error_rate and self._rng.random() < self.error_rate:
                return _error(500, "api_error", "emulated 500")
            if method != "GET" or path.rstrip("/") != "/v1/refunds":
                return _error(404, "invalid_request_error", f"Unrecognized request URL ({method} {path})")
            return self._list(parse_qs(query, keep_blank_values=True))

    def _list(self, params: dict[str, list[str]]):
        def one(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        try:
            limit = int(one("limit") or 10)
        except ValueError:
            return _error(400, "invalid_request_error", "Invalid integer: limit")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, "invalid_request_error",
                          f"This value must be greater than or equal to 1 and less than or equal to {MAX_LIMIT}")
        bounds = {}
        for op in ("gte", "gt", "lt", "lte"):
            raw = one(f"created[{op}]")
            if raw is not None:
                try:
                    bounds[op] = int(raw)
                except ValueError:
                    return _error(400, "invalid_request_error", f"Invalid integer: created[{op}]")
        tests = {"gte": lambda c, b: c >= b, "gt": lambda c, b: c > b, "lt": lambda c, b: c < b,
                 "lte": lambda c, b: c <= b}

        def created_of(obj: Any) -> int | None:
            value = obj.get("created") if isinstance(obj, dict) else None
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        # a malformed object without a usable `created` is served only to windowless listings
        selected = [o for o in self.refunds
                    if all(created_of(o) is not None and tests[op](created_of(o), b) for op, b in bounds.items())]
        selected.sort(key=lambda o: (created_of(o) or 0, str(o.get("id") if isinstance(o, dict) else "")),
                      reverse=True)
        after = one("starting_after")
        if after:
            ids = [str(o.get("id")) if isinstance(o, dict) else None for o in selected]
            if after not in ids:
                return _error(400, "invalid_request_error", f"No such refund: '{after}'")
            selected = selected[ids.index(after) + 1:]
        page = selected[:limit]
        self.pages.append({"starting_after": after, "limit": limit, **bounds, "ids": [
            o.get("id") if isinstance(o, dict) else None for o in page]})
        body = {"object": "list", "data": page, "has_more": len(selected) > limit, "url": "/v1/refunds"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
