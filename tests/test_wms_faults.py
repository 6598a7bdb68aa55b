"""Fault matrix: the WMS returns poll (assets.sources.wms.poll_returns) over real HTTP against the
emulator on the test world, under one injected fault at a time, compared with a fault-free run.

Every case must end with the same set of returns and line items as the fault-free run (for
records moving between pages: as the emulator's final snapshot): 0 lost, 0 duplicated. Two
cases must fail the source with a one-line SourceUnavailable: a total deadline the server's
errors outlast, and an ``x-retry-after`` longer than the client may honour.

``pytest -s tests/test_wms_faults.py`` prints the matrix (module fixture teardown); every figure
in it is also asserted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

import pytest

from assets.sources.wms import poll_returns, returns_to_frames
from pipelines.demo.emulator import WmsEmulator, WmsWorld
from pipelines.errors import SourceUnavailable
from pipelines.resources.wms import WmsClient

SINCE = datetime(2000, 1, 1)
OVERLAP = timedelta(hours=1)
CLIENT = dict(backoff_seconds=0.01, backoff_max_seconds=0.05, max_retries=8, requests_per_minute=0,
              timeout=5, page_size=20, page_overlap=2)


@dataclass
class Row:
    fault: str
    requests: int = 0
    retries: int = 0
    r429: int = 0
    records: int | None = None
    lost: int | None = None
    duplicated: int | None = None
    injected: int = 0
    outcome: str = ""
    checked: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def wms_world(demo_world) -> WmsWorld:
    return WmsWorld.load(demo_world)


@pytest.fixture(scope="module")
def matrix():
    rows: list[Row] = []
    yield rows
    print("\n" + render(rows))


def render(rows: list[Row]) -> str:
    head = ("fault", "requests", "retries", "429s", "records", "lost", "duplicated", "injected", "outcome")
    body = [(r.fault, r.requests, r.retries, r.r429, _dash(r.records), _dash(r.lost), _dash(r.duplicated),
             r.injected, r.outcome) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: " | ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), "-+-".join("-" * w for w in widths), *map(line, body)])


def _dash(value: Any) -> Any:
    return "-" if value is None else value


def keys_of(items: list[dict]) -> tuple[list[str], list[tuple[str, str]], int]:
    """(return refs, (ref, line item) pairs, rejects) as the ingestion would load them."""
    returns, lines, rejects = returns_to_frames(items, "wms_returns")
    return (returns["return_reference"].to_list(),
            list(zip(lines["return_reference"].to_list(), lines["line_item_reference"].to_list())),
            rejects.height)


def world_keys(world: WmsWorld) -> tuple[set[str], set[tuple[str, str]]]:
    refs = {r["returnReferenceNumber"] for r in world.returns}
    units = {(r["returnReferenceNumber"], li["lineItemReferenceNumber"]) for r in world.returns
             for li in r["lineItems"]}
    return refs, units


def run_poll(emu: WmsEmulator, manifest: dict, **client_kwargs) -> tuple[list[dict], WmsClient]:
    with WmsClient(emu.base_url, manifest["tenant_id"], manifest["token"], **{**CLIENT, **client_kwargs}) as c:
        items, _swept = poll_returns(c, SINCE, OVERLAP)
    return items, c


@pytest.fixture(scope="module")
def baseline(wms_world, manifest):
    with WmsEmulator(wms_world, tenant_id=manifest["tenant_id"], token=manifest["token"]) as emu:
        items, client = run_poll(emu, manifest)
    refs, units, rejects = keys_of(items)
    assert rejects == 0
    assert set(refs) == world_keys(wms_world)[0] and len(refs) == len(wms_world.returns)
    assert set(units) == world_keys(wms_world)[1]
    return {"refs": set(refs), "units": set(units), "requests": client.stats.requests}


def _5xx(emu):
    return emu.responses_5xx


# fault name, emulator switches, injected-count getter, extra client kwargs
CASES: list[tuple[str, dict, Callable[[WmsEmulator], int], dict]] = [
    ("none (baseline)", {}, lambda e: 0, {}),
    ("5xx 10%", {"error_rate": 0.1}, _5xx, {}),
    ("5xx 30%", {"error_rate": 0.3}, _5xx, {}),
    ("429 storm (10 per 1 s, unpaced, pages of 10)", {"rate_limit_per_minute": 10, "rate_window_seconds": 1.0},
     lambda e: e.responses_429, {"page_size": 10}),
    ("200 + HTML body 20%", {"html_rate": 0.2}, lambda e: e.responses_html, {}),
    ("truncated JSON 20%", {"truncated_rate": 0.2}, lambda e: e.responses_truncated, {}),
    ("latency 50 ms", {"latency_seconds": 0.05}, lambda e: 0, {}),
    ("connection reset 20%", {"reset_rate": 0.2}, lambda e: e.connections_reset, {}),
    ("broken chunked body 20%", {"broken_chunked_rate": 0.2}, lambda e: e.responses_broken_chunked, {}),
    ("body not the gzip it announces 20%", {"bad_gzip_rate": 0.2}, lambda e: e.responses_bad_gzip, {}),
    ("records moving (3 per page)", {"mutate_between_pages": 3}, lambda e: e.mutations_done, {}),
    ("no dataSetCount", {"drop_dataset_count": True}, lambda e: e.pages_without_dataset_count, {}),
]


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_poll_under_fault_loses_and_duplicates_nothing(case, wms_world, manifest, baseline, matrix):
    fault, switches, injected, client_kwargs = CASES[case]
    with WmsEmulator(wms_world, tenant_id=manifest["tenant_id"], token=manifest["token"], seed=100 + case,
                     **switches) as emu:
        items, client = run_poll(emu, manifest, **client_kwargs)
        final = emu.snapshot()
        n_injected = injected(emu)
        emu_429 = emu.responses_429
    refs, units, rejects = keys_of(items)
    if "mutate_between_pages" in switches:  # the truth is the world as it ended
        want_refs, want_units = world_keys(final)
        latest = {r["returnReferenceNumber"]: r["updatedAt"] for r in final.returns}
        assert [i for i in items if i["updatedAt"] != latest[i["returnReferenceNumber"]]] == [], \
            "every moved record is held in its final version"
    else:
        want_refs, want_units = baseline["refs"], baseline["units"]
    stats = client.stats
    row = Row(fault, stats.requests, stats.retries, stats.responses_429, len(refs),
              lost=len(want_refs - set(refs)) + len(want_units - set(units)),
              duplicated=(len(refs) - len(set(refs))) + (len(units) - len(set(units))),
              injected=n_injected, outcome="ok")
    matrix.append(row)

    assert rejects == 0
    assert row.lost == 0 and row.duplicated == 0
    assert set(refs) == want_refs and set(units) == want_units
    assert stats.responses_429 == emu_429
    if switches:
        assert n_injected > 0 or fault.startswith("latency"), f"{fault}: the fault never happened"
    if "error_rate" in switches or any(k in switches for k in ("html_rate", "truncated_rate", "reset_rate",
                                                                 "broken_chunked_rate", "bad_gzip_rate")):
        assert stats.retries == n_injected > 0, "each broken answer costs exactly one retry"
    else:
        assert stats.retries == 0
    if "rate_limit_per_minute" in switches:
        assert stats.responses_429 == n_injected > 0 and stats.waited_seconds >= 1.0
    else:
        assert stats.responses_429 == 0
    if switches.get("drop_dataset_count"):
        assert stats.pages_without_total == stats.pages == n_injected
        assert stats.requests >= baseline["requests"]
    else:
        assert stats.pages_without_total == 0
    if "latency_seconds" in switches:
        assert stats.requests == baseline["requests"]


def test_deadline_exceeded_fails_with_one_line_naming_endpoint_and_deadline(wms_world, manifest, matrix):
    with WmsEmulator(wms_world, tenant_id=manifest["tenant_id"], token=manifest["token"], error_rate=1.0) as emu:
        with pytest.raises(SourceUnavailable) as err:
            run_poll(emu, manifest, max_retries=1000, backoff_seconds=0.05, backoff_max_seconds=0.1,
                     deadline_seconds=1.0)
        served = emu.requests_total
        failed = emu.responses_5xx
    message = str(err.value)
    assert "\n" not in message
    assert "GET /openapi/v1/Returns/returnsWithLineItems" in message
    assert "wms.deadline_seconds (1s)" in message
    assert manifest["token"] not in message
    assert served == failed > 1
    matrix.append(Row("deadline 1 s, 5xx 100%", served, served - 1, 0, injected=failed,
                      outcome="SourceUnavailable: " + message))


def test_retry_after_longer_than_allowed_fails_with_one_line(wms_world, manifest, matrix):
    with WmsEmulator(wms_world, tenant_id=manifest["tenant_id"], token=manifest["token"],
                     rate_limit_per_minute=1, rate_window_seconds=60, retry_after_seconds=600) as emu:
        with pytest.raises(SourceUnavailable) as err:
            run_poll(emu, manifest, max_retry_after_seconds=5)
        served, r429 = emu.requests_total, emu.responses_429
    message = str(err.value)
    assert "\n" not in message
    assert "GET /openapi/v1/Returns/returnsWithLineItems" in message
    assert "wait 600s" in message and "wms.max_retry_after_seconds (5s)" in message
    assert (served, r429) == (2, 1), "the first page is served, the second meets the 429 and gives up at once"
    matrix.append(Row("x-retry-after 600 s > max 5 s", served, 0, r429, injected=r429,
                      outcome="SourceUnavailable: " + message))


def test_matrix_is_complete(matrix):
    faults = [r.fault for r in matrix]
    assert faults[: len(CASES)] == [c[0] for c in CASES], "run the whole module to get the whole matrix"
    assert all(r.outcome == "ok" and r.lost == 0 and r.duplicated == 0 for r in matrix[: len(CASES)])
    assert [r.outcome.split(":")[0] for r in matrix[len(CASES):]] == ["SourceUnavailable"] * 2
