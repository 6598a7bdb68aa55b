"""The WMS client over real HTTP against the emulator: paging past the 100 cap, 429s, 5xx,
records moving while paging, failures with a one-line reason, and the token kept secret."""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta

import pytest

from assets.sources.wms import RETURNS_WITH_ITEMS, poll_returns
from pipelines.errors import SourceUnavailable
from pipelines.resources.wms import WmsClient, build_dqb


def client_for(emulator, manifest, **kwargs) -> WmsClient:
    kwargs.setdefault("backoff_seconds", 0.01)
    kwargs.setdefault("backoff_max_seconds", 0.05)
    return WmsClient(emulator.base_url, manifest["tenant_id"], manifest["token"], **kwargs)


def all_refs(emulator) -> set[str]:
    return {r["returnReferenceNumber"] for r in emulator.snapshot().returns}


def test_build_dqb_matches_the_documented_syntax():
    assert build_dqb([("eq", "state", "Completed")], [("updatedAt", "asc")], 0, 100) == \
        "o=eq&p=state&v=Completed&s=updatedAt,asc&offset=0&count=100"
    assert build_dqb([("in", "state", ["A", "B"])]) == "o=in&p=state&v=A,B"


def test_pages_past_the_100_cap_and_collects_every_record_once(emulator, manifest):
    total = len(emulator.snapshot().returns)
    assert total > 250, "the test world must need several pages"
    with client_for(emulator, manifest, page_overlap=0) as client:
        items = client.fetch_all(RETURNS_WITH_ITEMS, sort=[("createdAt", "asc"), ("returnReferenceNumber", "asc")])
        assert len(items) == total
        assert len({i["returnReferenceNumber"] for i in items}) == total
        assert client.stats.requests == math.ceil(total / 100)
        assert all("lineItems" in i for i in items)


def test_page_overlap_rereads_boundaries_and_still_ends(emulator, manifest):
    total = len(emulator.snapshot().returns)
    with client_for(emulator, manifest, page_overlap=5) as client:
        items = client.fetch_all(RETURNS_WITH_ITEMS, sort=[("createdAt", "asc")], key="returnReferenceNumber")
        assert {i["returnReferenceNumber"] for i in items} == all_refs(emulator)
        assert client.stats.requests <= math.ceil(total / 95) + 1
        assert client.stats.items > total  # boundary rows were read twice, then collapsed


def test_records_moving_between_pages_are_neither_lost_nor_duplicated(emulator, manifest):
    emulator.mutate_between_pages = 3
    with client_for(emulator, manifest) as client:
        items, _swept = poll_returns(client, datetime(2000, 1, 1), overlap=timedelta(hours=1))
    assert emulator.mutations_done > 0
    final = {r["returnReferenceNumber"]: r for r in emulator.snapshot().returns}
    refs = [i["returnReferenceNumber"] for i in items]
    assert len(refs) == len(set(refs)), "duplicates must collapse to one record per return"
    assert set(refs) == set(final), "no return may be lost while records move between states"
    # every record that moved during paging is held in its latest version
    stale = [i for i in items if i["updatedAt"] != final[i["returnReferenceNumber"]]["updatedAt"]]
    assert stale == []


def test_rate_limit_429_is_waited_out_not_fatal(emulator, manifest):
    emulator.rate_limit_per_minute = 2
    emulator.rate_window_seconds = 0.4
    emulator.reset_rate_limit()
    with client_for(emulator, manifest, requests_per_minute=0) as client:
        items = client.fetch_all(RETURNS_WITH_ITEMS, key="returnReferenceNumber")
        assert {i["returnReferenceNumber"] for i in items} == all_refs(emulator)
        assert client.stats.responses_429 > 0
        assert emulator.responses_429 == client.stats.responses_429


def test_pacing_at_the_rate_limit_avoids_429(emulator, manifest):
    """A sliding-window limiter at the server's rate: a burst of requests meets no 429."""
    emulator.rate_limit_per_minute = 5
    emulator.rate_window_seconds = 1.0
    emulator.reset_rate_limit()
    with client_for(emulator, manifest, requests_per_minute=5, rate_window_seconds=1.0) as client:
        for _ in range(12):
            client.get("/Stocks", {"count": 1})
    assert client.stats.responses_429 == 0 and emulator.responses_429 == 0
    assert client.stats.waited_seconds > 1.0, "the 6th and 11th requests waited for the window"


def test_5xx_are_retried_with_backoff(emulator, manifest):
    emulator.error_rate = 0.4
    with client_for(emulator, manifest, max_retries=8, page_size=20) as client:
        items = client.fetch_all(RETURNS_WITH_ITEMS, key="returnReferenceNumber")
        assert {i["returnReferenceNumber"] for i in items} == all_refs(emulator)
        assert client.stats.retries > 0
        assert emulator.responses_5xx == client.stats.retries


def test_exhausted_retries_fail_with_one_line_reason_naming_the_endpoint(emulator, manifest, caplog):
    emulator.error_rate = 1.0
    caplog.set_level(logging.DEBUG)
    with client_for(emulator, manifest, max_retries=2) as client, pytest.raises(SourceUnavailable) as err:
        client.get("/Stocks", {"count": 10})
    message = str(err.value)
    assert "GET /openapi/v1/Stocks" in message and "3 attempts" in message
    assert "\n" not in message
    assert manifest["token"] not in message and manifest["token"] not in caplog.text


def test_wrong_token_is_refused_without_echoing_it(emulator, manifest, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "wrong-token-7c1e9a"
    with WmsClient(emulator.base_url, manifest["tenant_id"], secret) as client, \
            pytest.raises(SourceUnavailable) as err:
        client.get("/Returns")
    assert "refused the credentials" in str(err.value)
    assert secret not in str(err.value) and secret not in repr(client) and secret not in caplog.text


def test_unreachable_server_fails_fast_with_reason():
    with WmsClient("http://127.0.0.1:9", "t", "secret-xyz", max_retries=1, backoff_seconds=0.01,
                   timeout=2) as client, pytest.raises(SourceUnavailable) as err:
        client.get("/Returns")
    assert "unreachable" in str(err.value) and "secret-xyz" not in str(err.value)


def test_get_return_404_is_none(emulator, manifest):
    with client_for(emulator, manifest) as client:
        assert client.get_return("no-such-return") is None
        ref = next(iter(all_refs(emulator)))
        assert client.get_return(ref)["returnReferenceNumber"] == ref
