"""Client for the OPLOG.ONE-style WMS REST API (sources.md section 1), built on requests.

- one ``requests.Session`` with the ``X-Tenant-Id`` and bearer-token headers, a timeout on every call;
- ``dqb`` (DynamicQueryBuilder) queries with filters, sort, offset and count;
- offset paging that advances by the items actually received (the server caps ``count`` at
  100) and re-reads ``page_overlap`` rows at every boundary so a record leaving the result
  set between two pages cannot make the next one skip a row; callers collapse duplicates.
  Without a usable ``dataSetCount`` it pages until an empty page (``stats.pages_without_total``);
- pacing by a sliding-window limiter (pyrate-limiter) at ``requests_per_minute`` (the API's 250),
  so a normal run meets no 429; a 429 is waited out as ``x-retry-after`` says, up to
  ``max_retry_after_seconds`` a time;
- retries (tenacity) with jittered exponential backoff on 5xx, connection resets, timeouts,
  broken chunked or compressed bodies and bodies that are not JSON (an HTML error page, a
  truncated answer), at most ``max_retries`` in a row;
- a total ``deadline_seconds`` per client (one source of one run): past it, or when the server
  asks for a longer wait than allowed, ``SourceUnavailable`` with a one-line reason naming the
  endpoint.

The token lives only in the session headers: it is never logged, never put in an exception
message (server error texts are redacted, in case a server echoes the request) and never
returned by ``repr``.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence
from urllib.parse import quote, quote_plus, urlencode

import dagster as dg
import requests
import tenacity
from pydantic import Field

from pipelines.errors import SourceUnavailable
from pipelines.resources.secrets import reveal

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
    pages_without_total: int = 0     # pages whose dataSetCount was missing or not a number
    by_endpoint: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        return {
            "api_requests": self.requests,
            "api_429_responses": self.responses_429,
            "api_retries": self.retries,
            "api_pages": self.pages,
            "api_items": self.items,
            "api_wait_seconds": round(self.waited_seconds, 2),
            "api_pages_without_dataset_count": self.pages_without_total,
        }


class _Retryable(Exception):
    """A transient failure of one request (retried); ``wait`` set for a 429."""

    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)


class WmsClient:
    def __init__(self, base_url: str, tenant_id: str, token: str, *, timeout: float = 30.0,
                 max_retries: int = 6, backoff_seconds: float = 0.5, backoff_max_seconds: float = 30.0,
                 requests_per_minute: float = 250, max_retry_after_seconds: float = 120.0,
                 deadline_seconds: float = 3600.0, rate_window_seconds: float = 60.0,
                 page_size: int = MAX_PAGE, page_overlap: int = 5,
                 sleep: Callable[[float], None] = time.sleep, logger: logging.Logger | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = int(max_retries)
        self.backoff_seconds = backoff_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.max_retry_after_seconds = float(max_retry_after_seconds)
        self.deadline_seconds = float(deadline_seconds)
        self.page_size = min(int(page_size), MAX_PAGE)
        self.page_overlap = max(0, min(int(page_overlap), self.page_size // 2))
        self.stats = WmsStats()
        self._sleep = sleep
        self._log = logger or log
        self._rng = random.Random(0)
        self._started = time.monotonic()
        self._limiter = _limiter(requests_per_minute, rate_window_seconds)
        self._secrets = [s for s in {token, quote(token, safe=""), quote_plus(token)} if s]
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
        failures = 0  # transient failures in a row (429s do not count: they are never a reason to give up)

        # tenacity asks for the wait first, then whether to stop: the wait counts the failure.
        def wait(state: tenacity.RetryCallState) -> float:
            nonlocal failures
            exc = state.outcome.exception()
            if exc.wait is None:
                failures += 1
            return self._next_wait(exc, failures)

        def stop(state: tenacity.RetryCallState) -> bool:
            exc = state.outcome.exception()
            if exc.wait is None and failures > self.max_retries:
                raise SourceUnavailable(
                    f"WMS API {endpoint} failed after {failures} attempts: {exc.reason}") from None
            if exc.wait is not None and exc.wait > self.max_retry_after_seconds:
                raise SourceUnavailable(
                    f"WMS API {endpoint} rate limit: the server asks to wait {exc.wait:.0f}s, more than "
                    f"wms.max_retry_after_seconds ({self.max_retry_after_seconds:.0f}s)") from None
            if self._elapsed() + (state.upcoming_sleep or 0) > self.deadline_seconds:
                raise SourceUnavailable(
                    f"WMS API {endpoint} did not answer within wms.deadline_seconds "
                    f"({self.deadline_seconds:.0f}s): last {exc.reason}") from None
            return False

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            seconds = state.upcoming_sleep
            self.stats.waited_seconds += seconds
            if exc.wait is None:
                self.stats.retries += 1
                self._log.warning("WMS %s: %s, retry %d/%d in %.2fs", endpoint, exc.reason, failures,
                                  self.max_retries, seconds)
            else:
                self._log.info("WMS rate limit met on %s: waiting %.1fs as told", endpoint, seconds)

        retrying = tenacity.Retrying(retry=tenacity.retry_if_exception_type(_Retryable), stop=stop, wait=wait,
                                     before_sleep=before_sleep, sleep=self._sleep, reraise=True)
        return retrying(self._once, endpoint, url, params, allow_404)

    def _once(self, endpoint: str, url: str, params: dict[str, Any] | None, allow_404: bool) -> Any:
        self._pace()
        self.stats.requests += 1
        path = url[len(self.base_url) + len(API_PREFIX):]
        self.stats.by_endpoint[path] = self.stats.by_endpoint.get(path, 0) + 1
        try:
            resp = self._session.get(url, params=params, timeout=self.timeout)
        except TRANSIENT_ERRORS as exc:
            raise _Retryable(f"unreachable ({type(exc).__name__})") from None
        if resp.status_code == 429:
            self.stats.responses_429 += 1
            raise _Retryable("HTTP 429", wait=_float_header(resp, "x-retry-after") or 1.0)
        if resp.status_code >= 500:
            raise _Retryable(f"HTTP {resp.status_code}{self._error_message(resp)}")
        if resp.status_code == 404 and allow_404:
            return None
        if resp.status_code in (401, 403):
            raise SourceUnavailable(
                f"WMS API {endpoint} refused the credentials (HTTP {resp.status_code}); "
                "check OPLOG_TENANT_ID and OPLOG_TOKEN")
        if resp.status_code >= 400:
            raise SourceUnavailable(f"WMS API {endpoint} answered HTTP {resp.status_code}{self._error_message(resp)}")
        try:
            return resp.json()
        except ValueError:  # an HTML error page with status 200, a truncated body
            raise _Retryable("the body is not JSON (truncated or an error page)") from None

    def _pace(self) -> None:
        """A sliding-window limiter at the API's rate: a normal run never meets a 429."""
        if self._limiter is None:
            return
        before = time.monotonic()
        self._limiter.try_acquire("wms")
        self.stats.waited_seconds += time.monotonic() - before

    def _next_wait(self, exc: _Retryable, failures: int) -> float:
        if exc.wait is not None:
            return exc.wait
        delay = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (failures - 1))
        return delay * (0.5 + self._rng.random() / 2)  # jitter

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    def _error_message(self, resp: requests.Response) -> str:
        """The server's own error text, first line, without anything of our credentials."""
        try:
            body = resp.json()
            msg = (body.get("error") or {}).get("message") or body.get("message") if isinstance(body, dict) else None
        except ValueError:
            msg = None
        if not msg:
            return ""
        text = str(msg).splitlines()[0][:200] if str(msg).strip() else ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f" ({text})" if text else ""

    # -- paging ------------------------------------------------------------------------
    def iter_pages(self, path: str, filters: Sequence[Filter] = (),
                   sort: Sequence[tuple[str, str]] = ()) -> Iterator[list[dict]]:
        """Yield every page of a paged endpoint (items may repeat at page boundaries)."""
        cursor = 0           # items consumed so far
        request_offset = 0
        max_pages = 1_000_000
        for _ in range(max_pages):
            body = self.get(path, {"dqb": build_dqb(filters, sort, request_offset, self.page_size)})
            items = _page_items(body, f"GET {API_PREFIX}{path}")
            total = _dataset_count(body)
            if total is None:
                self.stats.pages_without_total += 1
            self.stats.pages += 1
            self.stats.items += len(items)
            if items:
                yield items
            new_cursor = request_offset + len(items)
            if not items or new_cursor <= cursor or (total is not None and new_cursor >= total):
                return
            cursor = new_cursor
            request_offset = max(0, cursor - self.page_overlap)
        raise SourceUnavailable(f"WMS API GET {API_PREFIX}{path}: paging did not end after {max_pages} pages")

    def fetch_all(self, path: str, filters: Sequence[Filter] = (), sort: Sequence[tuple[str, str]] = (),
                  key: str | None = None) -> list[dict]:
        """All items; with ``key``, duplicates are collapsed keeping the last one seen."""
        if key is None:
            return [item for page in self.iter_pages(path, filters, sort) for item in page]
        out: dict[Any, Any] = {}
        odd: list[Any] = []  # non-object items: kept for the caller to reject, never a crash
        for page in self.iter_pages(path, filters, sort):
            for item in page:
                if isinstance(item, dict):
                    out[item.get(key)] = item
                else:
                    odd.append(item)
        return list(out.values()) + odd

    def get_return(self, return_no: str) -> dict | None:
        from urllib.parse import quote
        return self.get(f"/Returns/{quote(return_no, safe='')}", allow_404=True)

    def find_returns_by_tracking(self, tracking_id: str) -> list[Any]:
        body = self.get("/Returns", {"trackingId": tracking_id, "offset": 0, "count": MAX_PAGE})
        return _page_items(body, f"GET {API_PREFIX}/Returns")


def _limiter(requests_per_window: float, window_seconds: float = 60.0):
    """At most ``requests_per_window`` requests in any ``window_seconds`` (the API: 250 a minute)."""
    if not requests_per_window or requests_per_window <= 0:
        return None  # unpaced (an emulator at full speed)
    from pyrate_limiter import Limiter, Rate
    return Limiter(Rate(max(1, int(requests_per_window)), max(1, int(window_seconds * 1000))))


def _page_items(body: Any, endpoint: str) -> list[Any]:
    """The ``items`` of a page envelope; a body of another shape is a source failure, not a crash."""
    if not isinstance(body, dict):
        raise SourceUnavailable(f"WMS API {endpoint} answered a JSON {type(body).__name__}, not a page object")
    items = body.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise SourceUnavailable(f"WMS API {endpoint} answered 'items' that is not a list")
    return items


def _dataset_count(body: dict) -> int | None:
    """``dataSetCount`` as a number, or None when it is missing, null or not a number (then the
    client pages until an empty page)."""
    value = body.get("dataSetCount")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (float, str)):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _float_header(resp: requests.Response, name: str) -> float | None:
    try:
        return max(0.0, float(resp.headers[name]))
    except (KeyError, ValueError):
        return None


class WmsClientResource(dg.ConfigurableResource):
    """The WMS API (``OPLOG_BASE_URL``, ``OPLOG_TENANT_ID``, ``OPLOG_TOKEN``)."""

    base_url: str
    tenant_id: str
    token: str = Field(repr=False, description="OPLOG_TOKEN (a secret: set it through the environment)")

    def client(self, wms_config: dict[str, float] | None = None,
               logger: logging.Logger | None = None) -> WmsClient:
        c = wms_config or {}
        return WmsClient(
            self.base_url, self.tenant_id, reveal(self.token),
            timeout=c.get("timeout_seconds", 30.0),
            max_retries=int(c.get("max_retries", 6)),
            backoff_seconds=c.get("backoff_seconds", 0.5),
            backoff_max_seconds=c.get("backoff_max_seconds", 30.0),
            requests_per_minute=c.get("requests_per_minute", 250),
            max_retry_after_seconds=c.get("max_retry_after_seconds", 120),
            deadline_seconds=c.get("deadline_seconds", 3600),
            page_size=int(c.get("page_size", MAX_PAGE)),
            page_overlap=int(c.get("page_overlap", 5)),
            logger=logger,
        )
