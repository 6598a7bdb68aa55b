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

import bisect
import itertools
import json
import random
import threading
from typing import Any
from urllib.parse import parse_qs

MAX_LIMIT = 100


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None):
    return status, {"Content-Type": "application/json", **(headers or {})}, \
        json.dumps({"error": {"type": kind, "message": message}}).encode()


def _created_of(obj: Any) -> int | None:
    value = obj.get("created") if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _Refunds(list):
    """The served refunds: a list whose ``version`` changes with every change of its items (the
    tests edit it directly), so the sorted listing is rebuilt only when needed."""

    version = 0

    def _changed(name):  # noqa: N805 - a decorator factory of the class body
        def method(self, *args, **kwargs):
            self.version += 1
            return getattr(list, name)(self, *args, **kwargs)
        return method

    for _name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
                  "__setitem__", "__delitem__", "__iadd__"):
        locals()[_name] = _changed(_name)
    del _name, _changed


class PaymentsApi:
    def __init__(self, refunds: list[dict], *, key: str, error_rate: float = 0.0, seed: int = 0):
        self._key = key
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.error_rate = error_rate
        self._storm: list[int] = []
        self.refunds = _Refunds(refunds)
        self._listing: tuple[int, list, list[int], dict[str, int]] | None = None  # see _sorted
        self.requests = 0
        self.pages: list[dict] = []  # the query of every page served (for the tests)

    def fail_next(self, count: int, status: int) -> None:
        with self._lock:
            self._storm.extend([status] * count)

    def inject(self, objects: list[Any]) -> None:
        with self._lock:
            self.refunds.extend(objects)

    def _sorted(self) -> tuple[list, list[int], dict[str, int]]:
        """The refunds newest first (created, then id, descending, as the API lists them), the
        negated created times in that order (ascending: bisect finds a window's start) and each
        id's position; rebuilt when refunds are added, so a page costs its window, not a sort."""
        if self._listing is None or self._listing[0] != self.refunds.version:
            order = sorted(self.refunds, key=lambda o: (_created_of(o) or 0, str(o.get("id") if isinstance(o, dict) else "")),
                           reverse=True)
            positions: dict[str, int] = {}
            for i, o in enumerate(order):
                if isinstance(o, dict):
                    positions.setdefault(str(o.get("id")), i)  # a repeated object: its first place
            self._listing = (self.refunds.version, order, [-(_created_of(o) or 0) for o in order], positions)
        return self._listing[1:]

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

        def selected(obj: Any) -> bool:
            # a malformed object without a usable `created` is served only to windowless listings
            created = _created_of(obj)
            return all(created is not None and tests[op](created, b) for op, b in bounds.items())

        order, negated, positions = self._sorted()
        start = 0
        if "lt" in bounds or "lte" in bounds:  # skip what is newer than the window
            upper = min(bounds.get("lt", 2**62) - 1, bounds.get("lte", 2**62))
            start = bisect.bisect_left(negated, -upper)
        after = one("starting_after")
        if after:
            position = positions.get(after)
            if position is None or not selected(order[position]):
                return _error(400, "invalid_request_error", f"No such refund: '{after}'")
            start = position + 1
        lower = max(bounds.get("gte", -2**62), bounds.get("gt", -2**62 - 1) + 1)
        page, has_more = [], False
        for obj in itertools.islice(order, start, None):
            created = _created_of(obj)
            if bounds and created is not None and created < lower:
                break  # newest first: everything after is older than the window
            if not selected(obj):
                continue
            if len(page) == limit:
                has_more = True
                break
            page.append(obj)
        self.pages.append({"starting_after": after, "limit": limit, **bounds, "ids": [
            o.get("id") if isinstance(o, dict) else None for o in page]})
        body = {"object": "list", "data": page, "has_more": has_more, "url": "/v1/refunds"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()
