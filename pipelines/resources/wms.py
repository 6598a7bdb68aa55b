"""Client for the OPLOG.ONE-style WMS REST API (sources.md section 1), built on requests.

- one ``requests.Session`` with the ``X-Tenant-Id`` and bearer-token headers, a timeout on every call;
- ``dqb`` (DynamicQueryBuilder) queries with filters, sort, offset and count;
- offset paging that advances by the items actually received (the server caps ``count`` at
  100) and re-reads ``page_overlap`` rows at every boundary so a record leaving the result
  set between two pages cannot make the next one skip a row; callers collapse duplicates;
- pacing on ``x-remaining-calls``; on 429 it waits ``x-retry-after`` and goes on;
- bounded exponential backoff on 5xx, connection errors and timeouts, then
  ``SourceUnavailable`` with a one-line reason naming the endpoint.

The token lives only in the session headers: it is never logged, never put in an exception
message and never returned by ``repr``.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import urlencode

import dagster as dg
import requests

from pipelines.errors import SourceUnavailable

API_PREFIX = "/openapi/v1"
MAX_PAGE = 100
log = logging.getLogger(__name__)

Filter = tuple[str, str, Any]  # (op, Property, value)


def build_dqb(filters: Sequence[Filter] = (), sort: Sequence[tuple[str, str]] = (),
              offset: int | None = None, count: int | None = None) -> str:
    """DynamicQueryBuilder query string: ``o=<op>&p=<Property>&v=<value>`` triplets, ``s=<Prop>,asc``."""
    pairs: list[tuple[str, str]] = []
    for op, prop, value in filters:
        if isinstance(value, (list, tuple, set)):
            value = ",".join(str(v) for v in value)
        pairs += [("o", op), ("p", prop), ("v", str(value))]
    for prop, direction in sort:
        pairs.append(("s", f"{prop},{direction}"))
    if offset is not None:
        pairs.append(("offset", str(offset)))
    if count is not None:
        pairs.append(("count", str(count)))
    return urlencode(pairs, safe=",:")


@dataclass
class WmsStats:
    requests: int = 0
    responses_429: int = 0
    retries: int = 0
    pages: int = 0
    items: int = 0
    waited_seconds: float = 0.0
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "api_requests": self.requests,
            "api_429_responses": self.responses_429,
            "api_retries": self.retries,
            "api_pages": self.pages,
            "api_items": self.items,
            "api_wait_seconds": round(self.waited_seconds, 2),
        }


class WmsClient:
    def __init__(self, base_url: str, tenant_id: str, token: str, *, timeout: float = 30.0,
                 max_retries: int = 6, backoff_seconds: float = 0.5, backoff_max_seconds: float = 30.0,
                 min_remaining_calls: int = 10, page_size: int = MAX_PAGE, page_overlap: int = 5,
                 sleep: Callable[[float], None] = time.sleep, logger: logging.Logger | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.min_remaining_calls = int(min_remaining_calls)
        self.page_size = min(int(page_size), MAX_PAGE)
        self.page_overlap = max(0, min(int(page_overlap), self.page_size // 2))
        self.stats = WmsStats()
        self._sleep = sleep
        self._log = logger or log
        self._rng = random.Random(0)
        self._remaining: int | None = None
        self._session = requests.Session()
        self._session.headers.update({
            "X-Tenant-Id": tenant_id,
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
        })

    def __repr__(self) -> str:  # never show headers
        return f"WmsClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "WmsClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None, *, allow_404: bool = False) -> Any:
        endpoint = f"GET {API_PREFIX}{path}"
        url = f"{self.base_url}{API_PREFIX}{path}"
        attempt = 0
        while True:
            self._pace()
            self.stats.requests += 1
            self.stats.by_endpoint[path] = self.stats.by_endpoint.get(path, 0) + 1
            try:
                resp = self._session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = type(exc).__name__
                if attempt >= self.max_retries:
                    raise SourceUnavailable(
                        f"WMS API {endpoint} unreachable after {attempt + 1} attempts ({reason})") from None
                attempt += 1
                self._backoff(attempt, endpoint, reason)
                continue
            self._remaining = _int_header(resp, "x-remaining-calls")
            if resp.status_code == 429:
                self.stats.responses_429 += 1
                wait = _float_header(resp, "x-retry-after") or 1.0
                self._log.info("WMS rate limit met on %s: waiting %.1fs as told", endpoint, wait)
                self.stats.waited_seconds += wait
                self._sleep(wait)
                continue  # a 429 is never a reason to give up
            if resp.status_code >= 500:
                if attempt >= self.max_retries:
                    raise SourceUnavailable(
                        f"WMS API {endpoint} failed after {attempt + 1} attempts: HTTP {resp.status_code}"
                        f"{_error_message(resp)}")
                attempt += 1
                self._backoff(attempt, endpoint, f"HTTP {resp.status_code}")
                continue
            if resp.status_code == 404 and allow_404:
                return None
            if resp.status_code in (401, 403):
                raise SourceUnavailable(
                    f"WMS API {endpoint} refused the credentials (HTTP {resp.status_code}); "
                    "check OPLOG_TENANT_ID and OPLOG_TOKEN")
            if resp.status_code >= 400:
                raise SourceUnavailable(f"WMS API {endpoint} answered HTTP {resp.status_code}{_error_message(resp)}")
            try:
                return resp.json()
            except ValueError:
                if attempt >= self.max_retries:
                    raise SourceUnavailable(f"WMS API {endpoint} returned a body that is not JSON") from None
                attempt += 1
                self._backoff(attempt, endpoint, "invalid JSON body")

    def _pace(self) -> None:
        """Slow down before the server has to say 429: the fewer calls left, the longer the pause."""
        if self._remaining is not None and self._remaining < self.min_remaining_calls:
            pause = 0.25 * (self.min_remaining_calls - self._remaining)
            self.stats.waited_seconds += pause
            self._sleep(pause)

    def _backoff(self, attempt: int, endpoint: str, reason: str) -> None:
        self.stats.retries += 1
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        delay *= 0.5 + self._rng.random() / 2  # jitter
        self._log.warning("WMS %s: %s, retry %d/%d in %.2fs", endpoint, reason, attempt, self.max_retries, delay)
        self.stats.waited_seconds += delay
        self._sleep(delay)

    # -- paging ------------------------------------------------------------------------
    def iter_pages(self, path: str, filters: Sequence[Filter] = (),
                   sort: Sequence[tuple[str, str]] = ()) -> Iterator[list[dict]]:
        """Yield every page of a paged endpoint (items may repeat at page boundaries)."""
        cursor = 0           # items consumed so far
        request_offset = 0
        max_pages = 1_000_000
        for _ in range(max_pages):
            body = self.get(path, {"dqb": build_dqb(filters, sort, request_offset, self.page_size)})
            items = body.get("items") or []
            total = int(body.get("dataSetCount") or 0)
            self.stats.pages += 1
            self.stats.items += len(items)
            if items:
                yield items
            new_cursor = request_offset + len(items)
            if not items or new_cursor <= cursor or new_cursor >= total:
                return
            cursor = new_cursor
            request_offset = max(0, cursor - self.page_overlap)
        raise SourceUnavailable(f"WMS API GET {API_PREFIX}{path}: paging did not end after {max_pages} pages")

    def fetch_all(self, path: str, filters: Sequence[Filter] = (), sort: Sequence[tuple[str, str]] = (),
                  key: str | None = None) -> list[dict]:
        """All items; with ``key``, duplicates are collapsed keeping the last one seen."""
        if key is None:
            return [item for page in self.iter_pages(path, filters, sort) for item in page]
        out: dict[Any, dict] = {}
        for page in self.iter_pages(path, filters, sort):
            for item in page:
                out[item.get(key)] = item
        return list(out.values())

    def get_return(self, return_no: str) -> dict | None:
        from urllib.parse import quote
        return self.get(f"/Returns/{quote(return_no, safe='')}", allow_404=True)

    def find_returns_by_tracking(self, tracking_id: str) -> list[dict]:
        body = self.get("/Returns", {"trackingId": tracking_id, "offset": 0, "count": MAX_PAGE})
        return body.get("items") or []


def _int_header(resp: requests.Response, name: str) -> int | None:
    try:
        return int(float(resp.headers[name]))
    except (KeyError, ValueError):
        return None


def _float_header(resp: requests.Response, name: str) -> float | None:
    try:
        return max(0.0, float(resp.headers[name]))
    except (KeyError, ValueError):
        return None


def _error_message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        msg = (body.get("error") or {}).get("message") or body.get("message")
    except ValueError:
        msg = None
    return f" ({str(msg).splitlines()[0][:200]})" if msg else ""


class WmsClientResource(dg.ConfigurableResource):
    """The WMS API (``OPLOG_BASE_URL``, ``OPLOG_TENANT_ID``, ``OPLOG_TOKEN``)."""

    base_url: str
    tenant_id: str
    token: str

    def client(self, wms_config: dict[str, float] | None = None,
               logger: logging.Logger | None = None) -> WmsClient:
        c = wms_config or {}
        return WmsClient(
            self.base_url, self.tenant_id, self.token,
            timeout=c.get("timeout_seconds", 30.0),
            max_retries=int(c.get("max_retries", 6)),
            backoff_seconds=c.get("backoff_seconds", 0.5),
            backoff_max_seconds=c.get("backoff_max_seconds", 30.0),
            min_remaining_calls=int(c.get("min_remaining_calls", 10)),
            page_size=int(c.get("page_size", MAX_PAGE)),
            page_overlap=int(c.get("page_overlap", 5)),
            logger=logger,
        )
