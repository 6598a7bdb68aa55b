"""The GraphQL RMA platform connector (pipelines/resources/rma_platform.py, ``gql`` over requests)
against the emulated platform (pipelines/demo/rma_platform_emulator.py: the SDL executed by ariadne)
over real HTTP: every node read once across pages, the updatedAt window respected, a 200 with
``errors`` and a 5xx storm handled, bad nodes rejected one by one without customer data, a query the
schema rejects failing clearly, the token never in logs or exceptions."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from pipelines.demo.emulator import WmsEmulator, WmsWorld
from pipelines.demo.rma_platform_emulator import RmaPlatformApi
from pipelines.errors import SourceUnavailable
from pipelines.resources.rma_platform import RmaPlatformClient

TOKEN = "plat-token-Distinct/7q+Z"
T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)


def node(i: int, **over) -> dict:
    at = (T0 + timedelta(hours=i)).isoformat()
    n = {"id": f"rma-{i:04d}", "returnReference": f"RP-{1000 + i}", "externalReference": None,
         "receivedAt": at, "issuedAt": at, "updatedAt": at, "expectedResolution": "REFUND",
         "processingStatus": "ACCEPTED", "deliveryStatus": "DELIVERING", "financialStatus": "PENDING",
         "fulfillmentStatus": "PENDING", "currency": "EUR", "comment": "call me on +49 170 1234567",
         "sender": {"name": "Anna Becker", "email": "anna@example.com"},
         "deliveryContact": {"name": "Warehouse"},
         "lines": [{"id": f"l{i}", "sku": "SKU-1", "quantity": 1, "reason": "SIZE_PROBLEM",
                    "productState": None, "lineState": "PENDING", "orderLineReference": str(5000 + i)}],
         "linkedOrders": [{"orderReference": str(100 + i), "externalReference": None}],
         "shipments": [{"trackingNumber": f"1Z{i:010d}", "carrier": "UPS", "deliveryStatus": "DELIVERING"}],
         "financialResolutions": [{"id": f"fr{i}", "type": "REFUND", "amount": 12.3, "currency": "EUR",
                                   "status": "PENDING"}],
         "statusHistory": [{"dimension": "PROCESSING", "status": "REQUESTED", "at": at},
                           {"dimension": "PROCESSING", "status": "ACCEPTED", "at": at}]}
    n.update(over)
    return n


@pytest.fixture
def platform():
    api = RmaPlatformApi([node(i) for i in range(230)], token=TOKEN)
    with WmsEmulator(WmsWorld(), rma_platform=api) as emu:
        yield api, emu.base_url


def test_every_node_is_read_once_across_pages(platform):
    api, base = platform
    out = RmaPlatformClient(base, TOKEN).read(None)
    assert out.pages == 3 and [len(p["ids"]) for p in api.pages] == [100, 100, 30]
    ids = [o.id for o in out.orders]
    assert len(ids) == 230 and len(set(ids)) == 230 and not out.rejects
    first = out.orders[0]
    assert first.return_reference == "RP-1000" and first.order_reference == "100"
    assert first.tracking_number == "1Z0000000000" and str(first.refunded_amount()) == "0"
    assert str(first.financial_resolutions[0].amount) == "12.3000"  # a Float read as its decimal text


def test_the_updated_at_window_is_asked_and_respected(platform):
    api, base = platform
    since = (T0 + timedelta(hours=200)).replace(tzinfo=None)
    out = RmaPlatformClient(base, TOKEN).read(since)
    assert [o.id for o in out.orders] == [f"rma-{i:04d}" for i in range(200, 230)]
    assert all(p["updated_at_gte"] == T0 + timedelta(hours=200) for p in api.pages)


def test_first_is_capped_at_100(platform):
    api, base = platform
    out = RmaPlatformClient(base, TOKEN, page_size=500).read(None)
    assert len(out.orders) == 230 and max(len(p["ids"]) for p in api.pages) == 100


def test_a_5xx_and_429_storm_is_survived_by_the_transports_retries(platform):
    api, base = platform
    api.fail_next(2, 503)
    api.fail_next(1, 429)
    out = RmaPlatformClient(base, TOKEN, backoff_factor=0.01).read(None)
    assert len(out.orders) == 230 and api.requests == 3 + 3


def test_a_200_with_errors_fails_the_source_in_one_line(platform, caplog):
    api, base = platform
    api.errors_next(1)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as err:
        RmaPlatformClient(base, TOKEN).read(None)
    message = str(err.value)
    assert "query failed on page 1" in message and "upstream database timeout" in message
    assert "\n" not in message and TOKEN not in message and TOKEN not in caplog.text


def test_retries_exhausted_or_a_refused_token_fail_without_the_token(platform, caplog):
    api, base = platform
    api.fail_next(20, 500)
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceUnavailable) as err:
        RmaPlatformClient(base, TOKEN, retries=2, backoff_factor=0.01).read(None)
    assert "after the transport's retries" in str(err.value) and TOKEN not in str(err.value)
    with pytest.raises(SourceUnavailable) as err:
        RmaPlatformClient(base, "wrong-token").read(None)
    assert "401" in str(err.value) and "wrong-token" not in str(err.value)
    assert TOKEN not in caplog.text and TOKEN not in repr(err.value)


def test_a_query_the_schema_rejects_fails_clearly(platform):
    _, base = platform
    bad = "query { rmaOrders(first: 10) { edges { node { id customerEmailAddress } } } }"
    with pytest.raises(SourceUnavailable) as err:
        RmaPlatformClient(base, TOKEN).read(None, query=bad)
    assert "customerEmailAddress" in str(err.value) and "RmaOrderType" in str(err.value)


def test_bad_nodes_are_rejected_one_by_one_without_customer_data(platform):
    api, base = platform
    api.orders[:] = [node(1), node(2, lines=[]), node(3, processingStatus="ACCEPTED",
                                                      lines=[{**node(3)["lines"][0], "quantity": 0}]),
                     node(4, statusHistory=[{"dimension": "PROCESSING", "status": "ACCEPTED", "at": "yesterday"}])]
    out = RmaPlatformClient(base, TOKEN).read(None)
    # "yesterday" is not a DateTime the schema's scalar serializes as is: the node stays, the model rejects it
    assert [o.id for o in out.orders] == ["rma-0001"]
    by_key = {r["record_key"]: r for r in out.rejects}
    assert set(by_key) == {"rma-0002", "rma-0003", "rma-0004"}
    assert "lines" in by_key["rma-0002"]["reason"] and "quantity" in by_key["rma-0003"]["reason"]
    assert by_key["rma-0003"]["order_reference"] == "103" and by_key["rma-0003"]["rma_reference"] == "RP-1003"
    for r in out.rejects:
        assert "anna@example.com" not in r["payload"] and "+49" not in r["payload"]


def test_status_at_t_comes_from_the_history():
    from pipelines.records.base import validate
    from pipelines.records.rma_platform import RmaOrder

    history = [{"dimension": "PROCESSING", "status": "REQUESTED", "at": "2026-03-01T08:00:00+02:00"},
               {"dimension": "DELIVERY", "status": "DELIVERED", "at": "2026-03-03T00:00:00Z"},
               {"dimension": "PROCESSING", "status": "COMPLETE", "at": "2026-03-04T00:00:00Z"}]
    order, reason = validate(RmaOrder, node(1, statusHistory=history))
    assert reason is None
    t = datetime(2026, 3, 3)
    assert order.status_at("PROCESSING", t) == "REQUESTED" and order.status_at("DELIVERY", t) == "DELIVERED"
    assert order.status_at("PROCESSING", datetime(2026, 3, 4)) == "COMPLETE"
    assert order.status_at("FINANCIAL", t) is None
