"""Local emulator of the OPLOG.ONE-style WMS returns API (spec: sources.md section 1).

A real HTTP server on localhost (stdlib ``ThreadingHTTPServer``, one daemon
thread per connection) serving a "WMS world" read from disk::

    world = WmsWorld.load(Path(".recon/demo"))          # <dir>/wms/*.jsonl
    with WmsEmulator(world, tenant_id="t1", token="s3cret") as emu:
        requests.get(emu.base_url + "/openapi/v1/Returns",
                     params={"state": "Completed", "count": 100},
                     headers={"X-Tenant-Id": "t1", "Authorization": "Bearer s3cret"})

or from a shell (blocking; prints the base URL, credentials come from the
world's ``manifest.json``)::

    python -m pipelines.demo.emulator WORLD_DIR --port 8080      # or: recon emulator --port N

World files: ``wms/returns.jsonl`` (returns with their ``lineItems``),
``wms/stock_adjustments.jsonl`` and ``wms/stocks.jsonl``, one JSON object per
line in the exact API shape; ``manifest.json`` (optional) holds ``tenant_id``
and ``token``.

Endpoints (all under ``/openapi/v1``): ``GET /Returns`` (summaries, no
``lineItems``), ``GET /Returns/returnsWithLineItems``, ``GET /Returns/{returnNo}``
(``returnNo`` = ``returnReferenceNumber``), ``GET /StockAdjustments``,
``GET /Stocks``.

Query forms (both, combinable; every filter is ANDed):

* plain parameters -- equality: ``state``, ``trackingId``,
  ``salesOrderReferenceNumber``, ``returnReferenceNumber`` (returns),
  ``transactionType``, ``tag`` (adjustments), ``sku`` (stocks); a repeated
  equality parameter matches any of its values. Date bounds ``<field>=<op>:<ts>``
  with op ``gt|gte|lt|lte`` on ``createdAt``/``updatedAt`` (returns),
  ``completedAt`` (adjustments), ``updatedAt`` (stocks); repeatable (ANDed).
  A date-only value means midnight UTC, a timestamp without offset is UTC.
  Parameter names are case-insensitive; other unknown plain parameters are
  ignored, as an ASP.NET server would.
* ``dqb=<url-encoded DynamicQueryBuilder string>``: triplets ``o=&p=&v=``
  (``eq ne lt gt ltoe gtoe cts sw ew in``), ``s=<Property>[,asc|desc]``
  (repeatable, multi-key), ``offset``, ``count``. Properties match JSON field
  names case-insensitively; timestamps compare as datetimes, numbers as numbers,
  everything else as case-sensitive strings (``cts``/``sw``/``ew`` always work on
  the raw text). A null never matches anything except ``ne``. Unknown keys,
  operators or properties, and unparsable values, give ``400`` with
  ``errors[].property``. Nulls sort first ascending, last descending.

Paging: ``offset`` (default 0) and ``count`` (default **10**, like the real
API's default page; silently capped at 100; ``count=0`` gives just
``dataSetCount``), as plain parameters or inside ``dqb`` (``dqb`` wins when
both are given). Without ``s=`` the order is the
world's insertion order. Envelope:
``{"items", "count" (items in this page), "offset", "dataSetCount" (all matching)}``.

Rate limit: sliding window of ``rate_limit_per_minute`` requests per
``rate_window_seconds``, keyed by the ``X-Tenant-Id`` header as sent, checked
before authentication (like an API gateway). Every response carries
``x-remaining-calls``; past the limit ``429`` with ``x-retry-after`` and the
documented body. Rejected requests do not consume the window.

Fault switches (settable while serving): ``error_rate`` (share of authenticated
requests answered 500/502/503, drawn from ``random.Random(seed)``),
``latency_seconds`` (sleep before each request is handled) and
``mutate_between_pages`` (N: every request to a returns list endpoint with
``offset > 0`` first advances N valid, not-yet-Completed returns one state,
preferring those in the requested result set before the offset; new timestamps
come from a clock starting at the latest timestamp of the world, +1 s per
mutation). Mutations change ``emulator.world``, a deep copy of the world given
to the constructor.

Broken answers (each a share in [0, 1] of authenticated requests, drawn from the
same seeded RNG, in this order, after ``error_rate``; a switch at 0 draws nothing,
so the other switches' sequences do not change):

* ``reset_rate`` -- the connection is reset (``SO_LINGER`` 0, RST) without an
  answer, before the request is routed (no mutation happens);
* ``html_rate`` -- ``200`` with ``Content-Type: text/html`` and an HTML error page
  (a proxy's), before the request is routed;
* ``truncated_rate`` -- a request that would have been answered ``200`` gets the
  first half of its JSON body (``Content-Length`` is that of the cut body, so the
  HTTP exchange is complete and only the JSON is broken);
* ``broken_chunked_rate`` -- the answer is sent ``Transfer-Encoding: chunked`` with
  a chunk size that is not hexadecimal (a client sees a broken chunked body);
* ``bad_gzip_rate`` -- the answer says ``Content-Encoding: gzip`` but its body is
  not gzip (a client cannot decode it).

``drop_dataset_count`` (bool): page envelopes carry no ``dataSetCount`` (a
client must page until an empty page). ``retry_after_seconds`` (None or >= 0):
the ``x-retry-after`` of every 429 (and the number in its message) instead of
the time until the window frees a slot -- the rate limit itself is unchanged.

Counters: ``requests_total``, ``responses_429``, ``responses_5xx``,
``responses_html``, ``responses_truncated``, ``responses_broken_chunked``,
``responses_bad_gzip``, ``connections_reset``,
``pages_without_dataset_count``, ``mutations_done``, ``requests_by_path`` (a copy).

Requests are logged at DEBUG level only (method, path, status), never headers.
"""

from __future__ import annotations

import argparse
import copy
import hmac
import json
import logging
import math
import random
import re
import signal
import socket
import struct
import threading
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["WmsWorld", "WmsEmulator", "serve_forever", "API_PREFIX", "DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE"]

log = logging.getLogger(__name__)

API_PREFIX = "/openapi/v1"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


# --------------------------------------------------------------------------- world


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            records.append(obj)
    return records


@dataclass
class WmsWorld:
    """The WMS side of a generated world, records in exact API JSON shape."""

    returns: list[dict] = field(default_factory=list)
    stock_adjustments: list[dict] = field(default_factory=list)
    stocks: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    # the payment provider's refunds (Stripe objects), None when the world has no payments/ folder
    payment_refunds: list[dict] | None = None
    # the GraphQL RMA platform's orders (nodes), None when the world has no rma_platform/ folder
    rma_platform_orders: list[dict] | None = None

    @classmethod
    def load(cls, world_dir: Path) -> "WmsWorld":
        """Read ``<world_dir>/wms/{returns,stock_adjustments,stocks}.jsonl`` and the
        optional ``<world_dir>/manifest.json`` and ``<world_dir>/payments/refunds.jsonl`` (the
        payment provider's refunds). A missing jsonl file is an empty list; a missing ``wms``
        directory is an error."""
        world_dir = Path(world_dir)
        wms = world_dir / "wms"
        if not wms.is_dir():
            raise FileNotFoundError(f"no WMS world at {wms}")
        manifest_path = world_dir / "manifest.json"
        manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
        return cls(
            returns=_read_jsonl(wms / "returns.jsonl"),
            stock_adjustments=_read_jsonl(wms / "stock_adjustments.jsonl"),
            stocks=_read_jsonl(wms / "stocks.jsonl"),
            manifest=manifest if isinstance(manifest, dict) else {},
            payment_refunds=(_read_jsonl(world_dir / "payments" / "refunds.jsonl")
                             if (world_dir / "payments").is_dir() else None),
            rma_platform_orders=(_read_jsonl(world_dir / "rma_platform" / "orders.jsonl")
                                 if (world_dir / "rma_platform").is_dir() else None),
        )


# --------------------------------------------------------------------------- values

_UNPARSABLE = object()
_PLUS_LOST = re.compile(r" (\d{2}:?\d{2})$")  # "+02:00" that became " 02:00" through URL decoding


@lru_cache(maxsize=65536)
def _parse_ts(text: str) -> datetime:
    """ISO-8601 date or timestamp -> aware UTC datetime. Date-only = midnight UTC,
    no offset = UTC. Raises ValueError."""
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        fixed = _PLUS_LOST.sub(r"+\1", s)
        if fixed == s:
            raise
        dt = datetime.fromisoformat(fixed)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _parse_num(text: str) -> int | float:
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    value = float(s)  # raises ValueError
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _format_ts(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now_iso() -> str:
    return _format_ts(datetime.now(timezone.utc))


def _coerce(kind: str, raw: Any) -> Any:
    """A record's value -> comparable typed value, or _UNPARSABLE. ``raw`` is not None."""
    if kind == "ts":
        if not isinstance(raw, str):
            return _UNPARSABLE
        try:
            return _parse_ts(raw)
        except ValueError:
            return _UNPARSABLE
    if kind == "num":
        if isinstance(raw, bool):
            return _UNPARSABLE
        if isinstance(raw, (int, float)):
            return raw
        if isinstance(raw, str):
            try:
                return _parse_num(raw)
            except ValueError:
                return _UNPARSABLE
        return _UNPARSABLE
    return raw if isinstance(raw, str) else _text(raw)


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


# --------------------------------------------------------------------------- entities


@dataclass(frozen=True)
class _Entity:
    name: str
    fields: dict[str, str]  # canonical JSON name -> "str" | "ts" | "num"
    plain_eq: tuple[str, ...]
    plain_dates: tuple[str, ...]

    def lookup(self, prop: str) -> str | None:
        return self._lower().get(prop.strip().lower())

    def _lower(self) -> dict[str, str]:
        return {name.lower(): name for name in self.fields}

    def with_observed(self, records: list[dict]) -> "_Entity":
        """Add scalar fields seen in the data but not in the spec (filterable too)."""
        fields = dict(self.fields)
        known = {k.lower() for k in fields}
        for rec in records:
            for key, value in rec.items():
                if key.lower() in known or isinstance(value, (list, dict)) or value is None:
                    continue
                fields[key] = "num" if isinstance(value, (int, float)) and not isinstance(value, bool) else "str"
                known.add(key.lower())
        return _Entity(self.name, fields, self.plain_eq, self.plain_dates)


_RETURNS = _Entity(
    "returns",
    {
        "source": "str", "returnReferenceNumber": "str", "salesOrderChannel": "str",
        "salesOrderReferenceNumber": "str", "notes": "str", "state": "str", "trackingId": "str",
        "cargoCarrier": "str", "createdAt": "ts", "updatedAt": "ts", "arrivedToWarehouseAt": "ts",
        "completedAt": "ts", "courierRequest": "str", "tag": "str",
    },
    plain_eq=("state", "trackingId", "salesOrderReferenceNumber", "returnReferenceNumber"),
    plain_dates=("createdAt", "updatedAt"),
)
_ADJUSTMENTS = _Entity(
    "stock_adjustments",
    {"id": "str", "transactionNumber": "str", "transactionType": "str", "completedAt": "ts", "tag": "str"},
    plain_eq=("transactionType", "tag"),
    plain_dates=("completedAt",),
)
_STOCKS = _Entity(
    "stocks",
    {
        "id": "str", "updatedAt": "ts", "sku": "str", "name": "str", "totalStockAmount": "num",
        "availableStock": "num", "reservedStock": "num", "receivedItemAmount": "num",
        "damagedItemAmount": "num", "expiredAmount": "num", "lostItemAmount": "num",
    },
    plain_eq=("sku",),
    plain_dates=("updatedAt",),
)


# --------------------------------------------------------------------------- queries


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


_DQB_OPS = ("eq", "ne", "lt", "gt", "ltoe", "gtoe", "cts", "sw", "ew", "in")
_PLAIN_OPS = {"gt": "gt", "gte": "gtoe", "lt": "lt", "lte": "ltoe"}
Predicate = Callable[[dict], bool]


@dataclass
class _Query:
    filters: list[Predicate] = field(default_factory=list)
    sorts: list[tuple[str, str, bool]] = field(default_factory=list)  # (field, kind, descending)
    offset: int = 0
    count: int = DEFAULT_PAGE_SIZE
    equals: dict[str, set[str]] = field(default_factory=dict)  # plain ``field=value`` filters (indexed)


def _short(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."


def _compile(fname: str, kind: str, op: str, raw_value: str, prop_label: str, errors: list[dict]) -> Predicate | None:
    """Build a predicate for ``<fname> <op> <raw_value>``; on a bad value append to errors."""

    def typed(text: str) -> Any:
        if kind == "ts":
            return _parse_ts(text)
        if kind == "num":
            return _parse_num(text)
        return text

    if op in ("cts", "sw", "ew"):
        needle = raw_value

        def text_match(rec: dict) -> bool:
            raw = rec.get(fname)
            if raw is None:
                return False
            hay = _text(raw)
            if op == "cts":
                return needle in hay
            return hay.startswith(needle) if op == "sw" else hay.endswith(needle)

        return text_match

    try:
        if op == "in":
            operand: Any = [typed(part) for part in raw_value.split(",")]
        else:
            operand = typed(raw_value)
    except ValueError:
        what = "a timestamp (ISO-8601 date or date-time)" if kind == "ts" else "a number"
        errors.append({
            "property": prop_label,
            "message": f"'{_short(raw_value)}' is not {what}.",
            "errorCode": "InvalidValue",
        })
        return None

    def compare(rec: dict) -> bool:
        raw = rec.get(fname)
        if raw is None:
            return op == "ne"
        value = _coerce(kind, raw)
        if value is _UNPARSABLE:
            return op == "ne"
        if op == "eq":
            return value == operand
        if op == "ne":
            return value != operand
        if op == "in":
            return value in operand
        if op == "lt":
            return value < operand
        if op == "gt":
            return value > operand
        if op == "ltoe":
            return value <= operand
        return value >= operand  # gtoe

    return compare


def _parse_int(name: str, text: str, errors: list[dict]) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        errors.append({"property": name, "message": f"'{_short(text)}' is not an integer.", "errorCode": "InvalidValue"})
        return None
    if value < 0:
        errors.append({"property": name, "message": f"{name} must not be negative.", "errorCode": "InvalidValue"})
        return None
    return value


def _parse_dqb(text: str, entity: _Entity, query: _Query, errors: list[dict]) -> tuple[int | None, int | None]:
    ops: list[str] = []
    props: list[str] = []
    values: list[str] = []
    offset = count = None
    for key, value in parse_qsl(text, keep_blank_values=True):
        k = key.strip().lower()
        if k == "o":
            ops.append(value)
        elif k == "p":
            props.append(value)
        elif k == "v":
            values.append(value)
        elif k == "s":
            fname_raw, _, direction = value.partition(",")
            direction = direction.strip().lower() or "asc"
            fname = entity.lookup(fname_raw)
            if fname is None:
                errors.append({"property": fname_raw, "message": f"Unknown sort property '{_short(fname_raw)}'.",
                               "errorCode": "UnknownProperty"})
            elif direction not in ("asc", "desc"):
                errors.append({"property": fname_raw, "message": f"Unknown sort direction '{_short(direction)}'.",
                               "errorCode": "InvalidSortDirection"})
            else:
                query.sorts.append((fname, entity.fields[fname], direction == "desc"))
        elif k == "offset":
            offset = _parse_int("offset", value, errors)
        elif k == "count":
            count = _parse_int("count", value, errors)
        else:
            errors.append({"property": "dqb", "message": f"Unknown dqb key '{_short(key)}'.", "errorCode": "UnknownKey"})
    if not (len(ops) == len(props) == len(values)):
        errors.append({"property": "dqb", "errorCode": "IncompleteFilter",
                       "message": "Every dqb filter needs exactly one o=, p= and v=."})
        return offset, count
    for op_raw, prop, value in zip(ops, props, values):
        op = op_raw.strip().lower()
        fname = entity.lookup(prop)
        if op not in _DQB_OPS:
            errors.append({"property": prop, "message": f"Unknown operator '{_short(op_raw)}'.",
                           "errorCode": "InvalidOperator"})
            continue
        if fname is None:
            errors.append({"property": prop, "message": f"Unknown or non-filterable property '{_short(prop)}'.",
                           "errorCode": "UnknownProperty"})
            continue
        pred = _compile(fname, entity.fields[fname], op, value, prop, errors)
        if pred is not None:
            query.filters.append(pred)
    return offset, count


def _parse_query(qs: str, entity: _Entity) -> _Query:
    query = _Query()
    errors: list[dict] = []
    eq_values: dict[str, list[str]] = defaultdict(list)
    plain_eq = {n.lower(): n for n in entity.plain_eq}
    plain_dates = {n.lower(): n for n in entity.plain_dates}
    offset = count = dqb_offset = dqb_count = None
    for key, value in parse_qsl(qs, keep_blank_values=True):
        k = key.strip().lower()
        if k == "dqb":
            o, c = _parse_dqb(value, entity, query, errors)
            dqb_offset = o if o is not None else dqb_offset
            dqb_count = c if c is not None else dqb_count
        elif k == "offset":
            offset = _parse_int("offset", value, errors)
        elif k == "count":
            count = _parse_int("count", value, errors)
        elif k in plain_eq:
            eq_values[plain_eq[k]].append(value)
        elif k in plain_dates:
            fname = plain_dates[k]
            op_raw, sep, bound = value.partition(":")
            op = _PLAIN_OPS.get(op_raw.strip().lower())
            if not sep or op is None:
                errors.append({"property": fname, "errorCode": "InvalidOperator",
                               "message": f"Expected {fname}=<gt|gte|lt|lte>:<date or timestamp>, got '{_short(value)}'."})
                continue
            pred = _compile(fname, "ts", op, bound, fname, errors)
            if pred is not None:
                query.filters.append(pred)
        else:
            log.debug("ignoring unknown query parameter %r", key)
    for fname, wanted in eq_values.items():
        query.filters.append(_any_equal(fname, set(wanted)))
        query.equals[fname] = set(wanted)
    if errors:
        raise _ApiError(400, "BadRequest", "The query is invalid.", errors)
    query.offset = dqb_offset if dqb_offset is not None else (offset or 0)
    requested = dqb_count if dqb_count is not None else count
    query.count = min(DEFAULT_PAGE_SIZE if requested is None else requested, MAX_PAGE_SIZE)
    return query


def _any_equal(fname: str, wanted: set[str]) -> Predicate:
    def pred(rec: dict) -> bool:
        raw = rec.get(fname)
        return raw is not None and _text(raw) in wanted

    return pred


def _sort_key(fname: str, kind: str) -> Callable[[dict], tuple]:
    def key(rec: dict) -> tuple:
        raw = rec.get(fname)
        if raw is None:
            return (0, 0)
        value = _coerce(kind, raw)
        if value is _UNPARSABLE:
            return (2, _text(raw))
        return (1, value)

    return key


def _query_without_paging(qs: str) -> tuple:
    """A query string's identity without offset/count (outer and inside dqb), for caching."""
    out = []
    for key, value in parse_qsl(qs, keep_blank_values=True):
        k = key.strip().lower()
        if k in ("offset", "count"):
            continue
        if k == "dqb":
            value = tuple((ik, iv) for ik, iv in parse_qsl(value, keep_blank_values=True)
                          if ik.strip().lower() not in ("offset", "count"))
        out.append((k, value))
    return tuple(out)


def _select(records: list[dict], query: _Query) -> list[dict]:
    rows = [r for r in records if all(f(r) for f in query.filters)]
    for fname, kind, desc in reversed(query.sorts):  # stable sorts, least significant key first
        rows.sort(key=_sort_key(fname, kind), reverse=desc)
    return rows


# --------------------------------------------------------------------------- return lifecycle


def _valid_for_advance(rec: dict) -> bool:
    """Only advance returns that satisfy the state invariants (injected data-quality
    defects must survive untouched)."""
    state = rec.get("state")
    if state not in ("ReturnCreated", "ArrivedToWarehouse"):
        return False
    try:
        created = _parse_ts(rec["createdAt"])
        if rec.get("completedAt") is not None:
            return False
        if state == "ReturnCreated":
            return rec.get("arrivedToWarehouseAt") is None
        arrived = rec.get("arrivedToWarehouseAt")
        return arrived is not None and created <= _parse_ts(arrived)
    except (KeyError, TypeError, ValueError):
        return False


def _latest_timestamp(returns: list[dict]) -> datetime | None:
    latest = None
    for rec in returns:
        stamps = [rec.get(f) for f in ("createdAt", "updatedAt", "arrivedToWarehouseAt", "completedAt")]
        items = rec.get("lineItems")
        if isinstance(items, list):
            stamps += [li.get("processedAt") for li in items if isinstance(li, dict)]
        for s in stamps:
            if isinstance(s, str):
                try:
                    dt = _parse_ts(s)
                except ValueError:
                    continue
                if latest is None or dt > latest:
                    latest = dt
    return latest


# --------------------------------------------------------------------------- HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog (socketserver's default 5 drops SYNs under concurrent connects)

    def __init__(self, addr, handler, emulator: "WmsEmulator"):
        self.emulator = emulator
        self.open_sockets: set[socket.socket] = set()
        self.reset_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, handler)

    def shutdown_request(self, request) -> None:
        with self.sockets_lock:
            reset = request in self.reset_sockets
            self.reset_sockets.discard(request)
        if reset:  # no FIN first (socketserver's shutdown(SHUT_WR)): close at once, a RST
            self.close_request(request)
        else:
            super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so client sessions reuse connections
    server_version = "WmsEmulator/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the 40 ms delayed-ACK stall

    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sockets_lock:
                self.server.open_sockets.discard(self.connection)

    def _dispatch(self, method: str) -> None:
        length = self.headers.get("Content-Length")
        request_body = b""
        if length:
            try:
                request_body = self.rfile.read(int(length))
            except (ValueError, OSError):
                self.close_connection = True
        status, headers, body = self.server.emulator._handle(method, self.path, self.headers, request_body)
        if status == RESET:
            self._reset_connection()
            return
        headers = dict(headers)
        fault = headers.pop(_FAULT_HEADER, None)
        try:
            if fault == "chunked":  # a chunk size that is not hexadecimal, then the connection closes
                self.close_connection = True
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"zz\r\n" + body[:16] + b"\r\n0\r\n\r\n")
                return
            if fault == "gzip":
                headers["Content-Encoding"] = "gzip"  # but the body is plain JSON
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json; charset=utf-8"))
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset_connection(self) -> None:
        """No answer: the socket is closed with SO_LINGER 0, so the client gets a RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        with self.server.sockets_lock:
            self.server.reset_sockets.add(self.connection)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # request line + status only; headers (Authorization) are never logged
        log.debug("%s " + format, self.address_string(), *args)


def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _envelope(code: str, message: str, errors: list[dict] | None = None) -> bytes:
    return _json({
        "error": {"code": code, "message": message, "errors": errors or []},
        "requestId": str(uuid.uuid4()),
        "timestamp": _now_iso(),
    })


RESET = 0  # a "status" of _handle: reset the connection, answer nothing
_FAULT_HEADER = "x-emulator-fault"  # internal: how _dispatch breaks the answer; never sent

_HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
              b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n")


def _seconds_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


_FAULTS = {500: ("InternalServerError", "An unexpected error occurred."),
           502: ("BadGateway", "The upstream service returned an invalid response."),
           503: ("ServiceUnavailable", "The service is temporarily unavailable.")}


class WmsEmulator:
    """HTTP emulator of the WMS returns API over a :class:`WmsWorld` (see module docstring)."""

    def __init__(
        self,
        world: WmsWorld,
        *,
        tenant_id: str = "demo-tenant",
        token: str = "demo-token",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_per_minute: int = 250,
        rate_window_seconds: float = 60.0,
        error_rate: float = 0.0,
        latency_seconds: float = 0.0,
        mutate_between_pages: int = 0,
        html_rate: float = 0.0,
        broken_chunked_rate: float = 0.0,
        bad_gzip_rate: float = 0.0,
        truncated_rate: float = 0.0,
        reset_rate: float = 0.0,
        drop_dataset_count: bool = False,
        retry_after_seconds: float | None = None,
        seed: int = 0,
        payments: Any = None,
        payments_key: str | None = None,
        rma_platform: Any = None,
        rma_platform_token: str | None = None,
    ) -> None:
        # the GraphQL RMA platform (pipelines/demo/rma_platform_emulator.RmaPlatformApi), on /graphql:
        # the one given, else one over the world's platform orders (none when it has none)
        if rma_platform is None:
            from pipelines.demo.rma_platform_emulator import RmaPlatformApi
            from pipelines.settings import DEMO_PLATFORM_TOKEN

            rma_platform = RmaPlatformApi(world.rma_platform_orders or [], token=rma_platform_token or str(
                world.manifest.get("rma_platform_token") or DEMO_PLATFORM_TOKEN))
        self.rma_platform = rma_platform
        # the payment provider's API (pipelines/demo/payments_emulator.PaymentsApi), served on /v1/:
        # the one given, else one over the world's payment refunds (when it has them)
        if payments is None and world.payment_refunds is not None:
            from pipelines.demo.payments_emulator import PaymentsApi
            from pipelines.settings import DEMO_PAYMENTS_KEY

            payments = PaymentsApi(world.payment_refunds,
                                   key=payments_key or str(world.manifest.get("payments_key") or DEMO_PAYMENTS_KEY))
        self.payments = payments
        self.world = copy.deepcopy(world)
        self.tenant_id = tenant_id
        self._token = token
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._selection_cache: "OrderedDict[tuple, list[dict]]" = OrderedDict()
        # (kind, field) -> field value as text -> positions of the records holding it
        self._indexes: dict[tuple[str, str], dict[str, list[int]]] = {}
        self._rng = random.Random(seed)
        self._rate_limit = 0
        self._rate_window = 0.0
        self._error_rate = 0.0
        self._latency = 0.0
        self._mutate = 0
        self.rate_limit_per_minute = rate_limit_per_minute
        self.rate_window_seconds = rate_window_seconds
        self.error_rate = error_rate
        self.latency_seconds = latency_seconds
        self.mutate_between_pages = mutate_between_pages
        self._html_rate = self._truncated_rate = self._reset_rate = 0.0
        self._drop_count = False
        self._retry_after: float | None = None
        self.html_rate = html_rate
        self._broken_chunked_rate = self._bad_gzip_rate = 0.0
        self.broken_chunked_rate = broken_chunked_rate
        self.bad_gzip_rate = bad_gzip_rate
        self.truncated_rate = truncated_rate
        self.reset_rate = reset_rate
        self.drop_dataset_count = drop_dataset_count
        self.retry_after_seconds = retry_after_seconds
        self._windows: dict[str, deque[float]] = {}
        # raw (possibly malformed) items served beside the real ones: see ``inject``
        self._injected: dict[str, tuple[list[Any], bool]] = {}
        self._entities = {
            "returns": _RETURNS.with_observed(self.world.returns),
            "stock_adjustments": _ADJUSTMENTS.with_observed(self.world.stock_adjustments),
            "stocks": _STOCKS.with_observed(self.world.stocks),
        }
        self._by_ref: dict[str, dict] = {}
        for rec in self.world.returns:
            ref = rec.get("returnReferenceNumber")
            if isinstance(ref, str):
                self._by_ref.setdefault(ref, rec)  # first one wins if a bad world repeats a reference
        self._clock = _latest_timestamp(self.world.returns) or datetime.now(timezone.utc).replace(microsecond=0)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None
        self.reset_counters()

    # ---- lifecycle

    def start(self) -> str:
        """Start serving in a background daemon thread; returns ``http://host:port``."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("emulator already started")
            server = _Server((self.host, self.port), _Handler, self)
            self._server = server
            host, port = server.server_address[:2]
            self.port = port
            self._base_url = f"http://{host}:{port}"
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"wms-emulator-{port}", daemon=True,
            )
            self._thread.start()
        log.debug("WMS emulator serving on %s", self._base_url)
        return self._base_url

    def stop(self) -> None:
        """Stop serving and close open connections. Idempotent."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            sockets = list(server.open_sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "WmsEmulator":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (without ``/openapi/v1``); only once started."""
        if self._base_url is None:
            raise RuntimeError("emulator not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        """``base_url + "/openapi/v1"``."""
        return self.base_url + API_PREFIX

    # ---- live switches

    @property
    def rate_limit_per_minute(self) -> int:
        return self._rate_limit

    @rate_limit_per_minute.setter
    def rate_limit_per_minute(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError("rate_limit_per_minute must be >= 1")
        with self._lock:
            self._rate_limit = int(value)

    @property
    def rate_window_seconds(self) -> float:
        return self._rate_window

    @rate_window_seconds.setter
    def rate_window_seconds(self, value: float) -> None:
        if float(value) <= 0:
            raise ValueError("rate_window_seconds must be > 0")
        with self._lock:
            self._rate_window = float(value)

    @property
    def error_rate(self) -> float:
        return self._error_rate

    @error_rate.setter
    def error_rate(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError("error_rate must be within [0, 1]")
        with self._lock:
            self._error_rate = float(value)

    @property
    def latency_seconds(self) -> float:
        return self._latency

    @latency_seconds.setter
    def latency_seconds(self, value: float) -> None:
        if float(value) < 0:
            raise ValueError("latency_seconds must be >= 0")
        with self._lock:
            self._latency = float(value)

    @property
    def mutate_between_pages(self) -> int:
        return self._mutate

    @mutate_between_pages.setter
    def mutate_between_pages(self, value: int) -> None:
        if int(value) < 0:
            raise ValueError("mutate_between_pages must be >= 0")
        with self._lock:
            self._mutate = int(value)

    @staticmethod
    def _share(name: str, value: float) -> float:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be within [0, 1]")
        return float(value)

    @property
    def html_rate(self) -> float:
        return self._html_rate

    @html_rate.setter
    def html_rate(self, value: float) -> None:
        value = self._share("html_rate", value)
        with self._lock:
            self._html_rate = value

    @property
    def broken_chunked_rate(self) -> float:
        return self._broken_chunked_rate

    @broken_chunked_rate.setter
    def broken_chunked_rate(self, value: float) -> None:
        value = self._share("broken_chunked_rate", value)
        with self._lock:
            self._broken_chunked_rate = value

    @property
    def bad_gzip_rate(self) -> float:
        return self._bad_gzip_rate

    @bad_gzip_rate.setter
    def bad_gzip_rate(self, value: float) -> None:
        value = self._share("bad_gzip_rate", value)
        with self._lock:
            self._bad_gzip_rate = value

    @property
    def truncated_rate(self) -> float:
        return self._truncated_rate

    @truncated_rate.setter
    def truncated_rate(self, value: float) -> None:
        value = self._share("truncated_rate", value)
        with self._lock:
            self._truncated_rate = value

    @property
    def reset_rate(self) -> float:
        return self._reset_rate

    @reset_rate.setter
    def reset_rate(self, value: float) -> None:
        value = self._share("reset_rate", value)
        with self._lock:
            self._reset_rate = value

    @property
    def drop_dataset_count(self) -> bool:
        return self._drop_count

    @drop_dataset_count.setter
    def drop_dataset_count(self, value: bool) -> None:
        with self._lock:
            self._drop_count = bool(value)

    @property
    def retry_after_seconds(self) -> float | None:
        return self._retry_after

    @retry_after_seconds.setter
    def retry_after_seconds(self, value: float | None) -> None:
        if value is not None and (not math.isfinite(float(value)) or float(value) < 0):
            raise ValueError("retry_after_seconds must be None or >= 0")
        with self._lock:
            self._retry_after = None if value is None else float(value)

    # ---- counters

    def reset_counters(self) -> None:
        with self._lock:
            self._requests_total = 0
            self._responses_429 = 0
            self._responses_5xx = 0
            self._responses_html = 0
            self._responses_truncated = 0
            self._responses_broken_chunked = 0
            self._responses_bad_gzip = 0
            self._connections_reset = 0
            self._pages_without_count = 0
            self._mutations_done = 0
            self._requests_by_path: dict[str, int] = defaultdict(int)

    def reset_rate_limit(self) -> None:
        """Forget every tenant's sliding window."""
        with self._lock:
            self._windows.clear()

    @property
    def requests_total(self) -> int:
        return self._requests_total

    @property
    def responses_429(self) -> int:
        return self._responses_429

    @property
    def responses_5xx(self) -> int:
        return self._responses_5xx

    @property
    def responses_html(self) -> int:
        """200 answers with an HTML body (``html_rate``)."""
        return self._responses_html

    @property
    def responses_truncated(self) -> int:
        """200 answers whose JSON body was cut in half (``truncated_rate``)."""
        return self._responses_truncated

    @property
    def responses_broken_chunked(self) -> int:
        """Answers sent with a broken chunked body (``broken_chunked_rate``)."""
        return self._responses_broken_chunked

    @property
    def responses_bad_gzip(self) -> int:
        """Answers whose body is not the gzip they announce (``bad_gzip_rate``)."""
        return self._responses_bad_gzip

    @property
    def connections_reset(self) -> int:
        """Requests answered by resetting the connection (``reset_rate``)."""
        return self._connections_reset

    @property
    def pages_without_dataset_count(self) -> int:
        """Page envelopes served without ``dataSetCount`` (``drop_dataset_count``)."""
        return self._pages_without_count

    @property
    def mutations_done(self) -> int:
        """Number of returns advanced one state by ``mutate_between_pages``."""
        return self._mutations_done

    @property
    def requests_by_path(self) -> dict[str, int]:
        """Copy of the per-URL-path request counts (query string excluded)."""
        with self._lock:
            return dict(self._requests_by_path)

    def inject(self, route: str, items: list[Any], *, every_time: bool = False) -> None:
        """Serve ``items`` as they are (any JSON: non-objects, wrong types, unknown grades) in the
        ``items`` of the last page of the list endpoint ``route`` ("/Returns",
        "/Returns/returnsWithLineItems", "/StockAdjustments", "/Stocks"): once, or on every last
        page with ``every_time``. On the last page, so that no client's paging arithmetic can skip
        a real record because of them. For tests of bad input: a real server can send anything."""
        with self._lock:
            self._injected[route.lower().rstrip("/")] = (list(items), every_time)

    def clear_injections(self) -> None:
        with self._lock:
            self._injected.clear()

    def snapshot(self) -> WmsWorld:
        """Deep copy of the current world, taken under the lock."""
        with self._lock:
            return copy.deepcopy(self.world)

    # ---- request handling

    def _rate_check(self, key: str) -> tuple[bool, int, int]:
        now = time.monotonic()
        window = self._rate_window
        stamps = self._windows.setdefault(key, deque())
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        limit = self._rate_limit
        if len(stamps) >= limit:
            # the request is let in once len(stamps) - limit + 1 of the oldest have expired
            frees_at = stamps[len(stamps) - limit] + window
            return False, 0, max(1, math.ceil(frees_at - now))
        stamps.append(now)
        return True, limit - len(stamps), 0

    def _auth_error(self, tenant: str | None, authorization: str | None) -> str | None:
        if not authorization:
            return "The Authorization header with a Bearer token is required."
        scheme, _, credential = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode("utf-8"), self._token.encode("utf-8")
        ):
            return "The bearer token is missing or invalid."
        if not tenant or not hmac.compare_digest(tenant.strip().encode("utf-8"), self.tenant_id.encode("utf-8")):
            return "The X-Tenant-Id header is missing or does not match the token."
        return None

    def _handle(self, method: str, raw_path: str, headers: Any,
                request_body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        latency = self._latency
        if latency > 0:
            time.sleep(latency)
        url = urlsplit(raw_path)
        path = url.path
        if path.startswith("/v1/") and self.payments is not None:
            return self.payments.handle(method, path, url.query, headers)
        if path.rstrip("/") == "/graphql" and self.rma_platform is not None:
            return self.rma_platform.handle(method, headers, request_body)
        tenant = headers.get("X-Tenant-Id")
        with self._lock:
            self._requests_total += 1
            self._requests_by_path[path] += 1
            allowed, remaining, retry_after = self._rate_check(tenant or "")
            out_headers = {"x-remaining-calls": str(remaining)}
            if not allowed:
                self._responses_429 += 1
                if self._retry_after is not None:
                    retry_after = _seconds_text(self._retry_after)
                out_headers["x-retry-after"] = str(retry_after)
                return 429, out_headers, _json({
                    "statusCode": 429,
                    "message": f"Rate limit is exceeded. Try again in {retry_after} seconds.",
                })
            problem = self._auth_error(tenant, headers.get("Authorization"))
            if problem is not None:
                return 401, out_headers, _envelope("Unauthorized", problem)
            if self._error_rate > 0 and self._rng.random() < self._error_rate:
                status = self._rng.choice(sorted(_FAULTS))
                self._responses_5xx += 1
                return status, out_headers, _envelope(*_FAULTS[status])
            if self._reset_rate > 0 and self._rng.random() < self._reset_rate:
                self._connections_reset += 1
                return RESET, {}, b""
            if self._html_rate > 0 and self._rng.random() < self._html_rate:
                self._responses_html += 1
                out_headers["Content-Type"] = "text/html; charset=utf-8"
                return 200, out_headers, _HTML_PAGE
            try:
                status, body = 200, self._route(method, path, url.query)
            except _ApiError as exc:
                status, body = exc.status, _envelope(exc.code, self._redact(exc.message), self._redact_errors(exc.errors))
            except Exception:  # a bug in the emulator: answer like a server would
                log.exception("WMS emulator failed on %s %s", method, path)
                status, body = 500, _envelope(*_FAULTS[500])
            if status >= 500:
                self._responses_5xx += 1
            if status == 200 and self._truncated_rate > 0 and self._rng.random() < self._truncated_rate:
                self._responses_truncated += 1
                body = body[: len(body) // 2]
            elif status == 200 and self._broken_chunked_rate > 0 and self._rng.random() < self._broken_chunked_rate:
                self._responses_broken_chunked += 1
                out_headers[_FAULT_HEADER] = "chunked"
            elif status == 200 and self._bad_gzip_rate > 0 and self._rng.random() < self._bad_gzip_rate:
                self._responses_bad_gzip += 1
                out_headers[_FAULT_HEADER] = "gzip"
            return status, out_headers, body

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _redact_errors(self, errors: list[dict]) -> list[dict]:
        return [{k: self._redact(v) if isinstance(v, str) else v for k, v in e.items()} for e in errors]

    def _route(self, method: str, path: str, qs: str) -> bytes:
        low = path.lower().rstrip("/")
        prefix = API_PREFIX.lower()
        if not low.startswith(prefix + "/"):
            raise _ApiError(404, "NotFound", "The requested resource does not exist.")
        rest = path.rstrip("/")[len(prefix) + 1:]
        segments = [unquote(s) for s in rest.split("/")]
        lower = [s.lower() for s in segments]
        route = "/" + "/".join(lower)
        if lower == ["returns"]:
            handler = lambda: self._list("returns", qs, with_items=False, route=route)  # noqa: E731
        elif lower == ["returns", "returnswithlineitems"]:
            handler = lambda: self._list("returns", qs, with_items=True, route=route)  # noqa: E731
        elif len(segments) == 2 and lower[0] == "returns" and segments[1]:
            handler = lambda: self._one_return(segments[1])  # noqa: E731
        elif lower == ["stockadjustments"]:
            handler = lambda: self._list("stock_adjustments", qs, with_items=True, route=route)  # noqa: E731
        elif lower == ["stocks"]:
            handler = lambda: self._list("stocks", qs, with_items=True, route=route)  # noqa: E731
        else:
            raise _ApiError(404, "NotFound", "The requested resource does not exist.")
        if method != "GET":
            raise _ApiError(405, "MethodNotAllowed", f"Method {method} is not allowed on this resource.")
        return handler()

    def _one_return(self, return_no: str) -> bytes:
        rec = self._by_ref.get(return_no)
        if rec is None:
            raise _ApiError(404, "NotFound", f"Return '{_short(return_no)}' was not found.",
                            [{"property": "returnNo", "message": "No return with this reference number.",
                              "errorCode": "NotFound"}])
        return _json(rec)

    def _list(self, kind: str, qs: str, *, with_items: bool, route: str = "") -> bytes:
        entity = self._entities[kind]
        query = _parse_query(qs, entity)
        records: list[dict] = getattr(self.world, kind)
        rows = self._selected(kind, qs, records, query)
        if kind == "returns" and query.offset > 0 and self._mutate > 0:
            if self._advance_returns(rows, query.offset, self._mutate):
                self._selection_cache.clear()  # records changed: every cached selection is stale
                self._indexes.clear()
                rows = self._selected(kind, qs, records, query)
        page = rows[query.offset: query.offset + query.count]
        if not with_items:
            page = [{k: v for k, v in rec.items() if k != "lineItems"} for rec in page]
        if route in self._injected and query.offset + query.count >= len(rows):
            extra, every_time = self._injected[route]
            if not every_time:
                del self._injected[route]
            page = [*page, *extra]
        envelope = {"items": page, "count": len(page), "offset": query.offset, "dataSetCount": len(rows)}
        if self._drop_count:
            del envelope["dataSetCount"]
            self._pages_without_count += 1
        return _json(envelope)

    def _selected(self, kind: str, qs: str, records: list[dict], query: _Query) -> list[dict]:
        """Filtered and sorted records of a query, cached without its paging so that walking
        the pages of a large world costs one selection, not one per page (LRU, 32 queries)."""
        key = (kind, _query_without_paging(qs))
        cache = self._selection_cache
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        if query.equals:  # a plain equality filter (trackingId=...): look it up, do not scan
            fname, wanted = min(query.equals.items(), key=lambda kv: len(kv[1]))
            index = self._index(kind, fname, records)
            records = [records[p] for p in sorted({p for v in wanted for p in index.get(v, ())})]
        rows = _select(records, query)  # every filter still applies to the candidates
        cache[key] = rows
        while len(cache) > 32:
            cache.popitem(last=False)
        return rows

    def _index(self, kind: str, fname: str, records: list[dict]) -> dict[str, list[int]]:
        """Equality index of one field, built on first use (the world changes only through
        ``_advance_returns``, which drops every index)."""
        index = self._indexes.get((kind, fname))
        if index is None:
            index = {}
            for position, rec in enumerate(records):
                raw = rec.get(fname) if isinstance(rec, dict) else None
                if raw is not None:
                    index.setdefault(_text(raw), []).append(position)
            self._indexes[(kind, fname)] = index
        return index

    def _advance_returns(self, rows: list[dict], offset: int, n: int) -> int:
        """Advance up to n returns one state: first random ones in ``rows`` before
        ``offset``, then ones at/after it, then any other in the world."""
        before = [r for r in rows[:offset] if _valid_for_advance(r)]
        chosen = self._rng.sample(before, min(n, len(before)))
        taken = {id(r) for r in chosen}
        for pool in (rows[offset:], self.world.returns):
            for rec in pool:
                if len(chosen) >= n:
                    break
                if id(rec) not in taken and _valid_for_advance(rec):
                    chosen.append(rec)
                    taken.add(id(rec))
        for rec in chosen:
            self._clock += timedelta(seconds=1)
            stamp = _format_ts(self._clock)
            if rec["state"] == "ReturnCreated":
                rec["state"] = "ArrivedToWarehouse"
                rec["arrivedToWarehouseAt"] = stamp
            else:
                rec["state"] = "Completed"
                rec["completedAt"] = stamp
                for item in rec.get("lineItems") or []:
                    if isinstance(item, dict) and item.get("state") == "WaitingToBeProcessed":
                        item["state"] = "Undamaged"
                        item["processedAt"] = stamp
            rec["updatedAt"] = stamp
        self._mutations_done += len(chosen)
        return len(chosen)


# --------------------------------------------------------------------------- CLI


def serve_forever(world_dir: Path, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
    """Serve the world at ``world_dir`` until interrupted (Ctrl-C). Credentials come from
    ``kwargs`` or else the world's ``manifest.json`` (``tenant_id``, ``token``) or else the
    demo defaults. Prints the base URL (never the token) on stdout."""
    world = WmsWorld.load(Path(world_dir))
    for key in ("tenant_id", "token", "payments_key", "rma_platform_token"):
        if kwargs.get(key) is None and world.manifest.get(key):
            kwargs[key] = str(world.manifest[key])
        elif kwargs.get(key) is None:
            kwargs.pop(key, None)
    emulator = WmsEmulator(world, host=host, port=port, **kwargs)
    base_url = emulator.start()
    print(base_url, flush=True)

    def _terminate(signum, frame):  # a supervisor's SIGTERM stops it like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the WMS returns API emulator over a world directory.")
    parser.add_argument("world_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate-limit-per-minute", type=int, default=250)
    args = parser.parse_args(argv)
    serve_forever(args.world_dir, args.host, args.port, rate_limit_per_minute=args.rate_limit_per_minute)


if __name__ == "__main__":
    main()
