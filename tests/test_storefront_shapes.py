"""OpenCart connector on real shops' data shapes (sources.md section 2): unmapped names, typed-in
models, zero dates, MyISAM read order, the shop's time zone, reject grains, reject payloads,
abandoned checkouts, reasons and payloads from the record models. Each test reads a real SQLite
OpenCart database built in the test."""
from __future__ import annotations

import json
import re
import sqlite3
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from pipelines.config import load_config
from pipelines.errors import SourceUnavailable
from pipelines.resources import build_resources
from pipelines.records import storefront as storefront_records
from pipelines.records.base import allow_list, payload, validate
from pipelines.records.storefront import DATE_ADDED_MISSING, PERSONAL_COLUMNS, Return, ReturnHistory
from pipelines.records.values import read_decimal, read_integer, read_text
from pipelines.resources.storefront import GRAIN_COLUMNS, MODELS, RAW_TABLES, REJECTS_SCHEMA, StorefrontResource
from pipelines.settings import load_settings
from tests.test_storefront_ingestion import PERSONAL, VALID_HISTORY, VALID_RETURNS, build_opencart

CFG = load_config()


@pytest.fixture()
def db(tmp_path) -> Path:
    return build_opencart(tmp_path / "shop.sqlite")


def sql(db: Path, *statements: str, params: tuple = ()) -> None:
    con = sqlite3.connect(db)
    try:
        for statement in statements:
            con.execute(statement, params)
        con.commit()
    finally:
        con.close()


def read(db: Path, **kwargs):
    return StorefrontResource(db_url=f"sqlite:///{db}", **kwargs).read_snapshot(
        CFG.tracking_pattern, CFG.rma_status_map, CFG.rma_action_map)


def rejects_by_key(snap) -> dict[str, dict]:
    return {row["record_key"]: row for row in snap.rejects.iter_rows(named=True)}


def returns_by_id(snap) -> dict[int, dict]:
    return {row["return_id"]: row for row in snap.returns.iter_rows(named=True)}


# --------------------------------------------------------------------------- 1. unmapped names load

def test_unmapped_status_and_action_names_and_nameless_ids_load(db):
    sql(db,
        # a status id with no language-1 name at all, an action id with no name at all
        "INSERT INTO oc_return_status VALUES (60, 2, 'Nur Deutsch')",
        "UPDATE oc_return SET return_status_id = 60, return_action_id = 88 WHERE return_id = 502",
        # history rows: an unmapped name, and an id without a language-1 name
        "INSERT INTO oc_return_history VALUES (20, 501, 31, 0, '', '2026-03-24 09:00:00')",
        "INSERT INTO oc_return_history VALUES (21, 502, 60, 0, '', '2026-03-24 09:00:00')")
    snap = read(db)
    got = returns_by_id(snap)
    assert set(got) == VALID_RETURNS
    assert (got[503]["return_status_id"], got[503]["return_status_name"]) == (31, "Lost in Space")
    assert (got[504]["return_status_id"], got[504]["return_status_name"]) == (44, "On Hold Forever")
    assert (got[508]["return_action_id"], got[508]["return_action_name"]) == (77, "Sent to the Moon")
    assert (got[502]["return_status_id"], got[502]["return_status_name"]) == (60, None)
    assert (got[502]["return_action_id"], got[502]["return_action_name"]) == (88, None)
    history = {row["return_history_id"]: row for row in snap.return_history.iter_rows(named=True)}
    assert set(history) == VALID_HISTORY | {20, 21}
    assert history[20]["return_status_name"] == "Lost in Space"
    assert (history[21]["return_status_id"], history[21]["return_status_name"]) == (60, None)
    rej = rejects_by_key(snap)
    assert not {"RMA-502", "RMA-503", "RMA-504", "RMA-508", "RMA-501/history:20", "RMA-502/history:21"} & set(rej)
    # the other RMA validations still hold
    assert set(rej) >= {"RMA-505", "RMA-506", "RMA-507"}


# --------------------------------------------------------------------------- 2. RMA -> order line by model

def test_rma_model_matches_its_order_line_case_insensitively_and_product_id_decides_nothing(db):
    sql(db,
        # typed in on the return form: product_id 0, other case, surrounding spaces
        "UPDATE oc_return SET product_id = 0, model = '  sku-a ' WHERE return_id = 501",
        # a product re-created since: the product id no longer matches the line's
        "UPDATE oc_return SET product_id = 9012 WHERE return_id = 502",
        # the line's product id, but a model the order has no line for: no line
        "UPDATE oc_return SET product_id = 15, model = 'SKU-NOPE' WHERE return_id = 509",
        # the line's model itself has surrounding spaces and another case
        "UPDATE oc_order_product SET model = ' Sku-C  ' WHERE order_product_id = 3",
        # a blank model never matches (not even a blank line model)
        "UPDATE oc_order_product SET model = '' WHERE order_product_id = 4",
        "UPDATE oc_return SET model = '   ' WHERE return_id = 508")
    snap = read(db)
    got = returns_by_id(snap)
    assert {501, 502, 503, 504} <= set(got)
    assert got[501]["model"] == "  sku-a " and got[501]["product_id"] == 0  # kept as read
    rej = rejects_by_key(snap)
    assert "RMA-509" in rej and "no line" in rej["RMA-509"]["reason"] and "SKU-NOPE" in rej["RMA-509"]["reason"]
    assert "RMA-508" in rej and "no line" in rej["RMA-508"]["reason"]
    assert "no line" in rej["RMA-507"]["reason"]


# --------------------------------------------------------------------------- 3. date_added missing

@pytest.mark.parametrize("value", [None, "0000-00-00 00:00:00", "", "2026-00-10 10:00:00"])
def test_return_or_history_without_date_added_is_a_reject(db, value):
    sql(db, "UPDATE oc_return SET date_added = ? WHERE return_id = 502", params=(value,))
    sql(db, "UPDATE oc_return_history SET date_added = ? WHERE return_history_id = 2", params=(value,))
    snap = read(db)
    assert 502 not in set(snap.returns["return_id"])
    assert 2 not in set(snap.return_history["return_history_id"])
    rej = rejects_by_key(snap)
    assert rej["RMA-502"]["reason"] == DATE_ADDED_MISSING
    assert rej["RMA-501/history:2"]["reason"] == DATE_ADDED_MISSING
    assert "cannot be placed in time" in DATE_ADDED_MISSING
    # the rest of the RMA's history, and the RMA of a rejected history row, still load
    assert 501 in set(snap.returns["return_id"])
    assert {5, 6} <= set(snap.return_history["return_history_id"])
    assert snap.reject_counts["raw.oc_returns"] == 4 and snap.reject_counts["raw.oc_return_history"] == 2


def test_orders_and_products_without_dates_still_load(db):
    sql(db, "UPDATE oc_order SET date_added = '0000-00-00 00:00:00' WHERE order_id = 1001",
        "UPDATE oc_product SET date_modified = NULL WHERE product_id = 11")
    snap = read(db)
    assert 1001 in set(snap.orders["order_id"]) and 11 in set(snap.products["product_id"])


# --------------------------------------------------------------------------- 4. children before parents

class Spy:
    """Wraps create_engine: records the table each query reads first, and runs a hook before it."""

    def __init__(self, monkeypatch, before=None):
        import pipelines.resources.storefront as storefront_module

        self.tables: list[str] = []
        real_create_engine = sa.create_engine

        def create_engine(url, **kwargs):
            engine = real_create_engine(url, **kwargs)

            @sa.event.listens_for(engine, "before_cursor_execute")
            def _spy(conn, cursor, statement, parameters, context, executemany):
                table = re.search(r"\bFROM\s+[\"`]?(\w+)", statement).group(1)
                self.tables.append(table)
                if before is not None:
                    before(table)

            return engine

        monkeypatch.setattr(storefront_module.sa, "create_engine", create_engine)


def test_children_are_read_before_parents(db, monkeypatch):
    spy = Spy(monkeypatch)
    read(db)
    assert spy.tables == ["oc_return_history", "oc_return", "oc_order_product", "oc_order", "oc_product"]


def test_a_return_written_during_the_read_never_appears_without_its_order(db, monkeypatch):
    """MyISAM: no transaction. The shop writes a new order, its line, an RMA and its first history
    row while the reader is between two queries: whatever the reader saw of it, every child it
    loaded has its parent, and nothing is rejected for it."""

    def shop_writes(table: str) -> None:
        if table == "oc_return":  # history already read, returns not yet
            sql(db,
                "INSERT INTO oc_order (order_id, store_id, customer_id, total, order_status_id, currency_code, "
                "currency_value, date_added, date_modified) "
                "VALUES (2001, 0, 9, '10.0000', 5, 'EUR', '1.00000000', '2026-03-25 10:00:00', "
                "'2026-03-25 10:00:00')",
                "INSERT INTO oc_order_product VALUES (90, 2001, 11, 'Blue Kettle', 'SKU-A', 1, '10.0000', "
                "'10.0000', '0.0000', 0)",
                "INSERT INTO oc_return (return_id, order_id, product_id, customer_id, product, model, quantity, "
                "opened, return_reason_id, return_action_id, return_status_id, date_ordered, date_added, "
                "date_modified) VALUES (601, 2001, 11, 9, 'Blue Kettle', 'SKU-A', 1, 0, 3, 0, 7, '2026-03-25', "
                "'2026-03-26 10:00:00', '2026-03-26 10:00:00')",
                "INSERT INTO oc_return_history VALUES (90, 601, 7, 0, '', '2026-03-26 10:00:00')")

    Spy(monkeypatch, before=shop_writes)
    snap = read(db)
    assert 601 in set(snap.returns["return_id"])           # read after its history: its order came later still
    assert 90 in set(snap.order_lines["order_product_id"]) and 2001 in set(snap.orders["order_id"])
    assert 90 not in set(snap.return_history["return_history_id"])  # written after history was read
    assert not {k for k in snap.rejects["record_key"] if "601" in k or "2001" in k or ":90" in k}


# --------------------------------------------------------------------------- 5. the shop's time zone

def test_berlin_shop_datetimes_load_as_utc(db):
    sql(db,
        "UPDATE oc_order SET date_added = '2026-03-10 00:30:00', date_modified = '2026-07-01 12:00:00' "
        "WHERE order_id = 1001",
        "UPDATE oc_product SET date_modified = '2026-03-10 00:30:00' WHERE product_id = 11",
        "UPDATE oc_return SET date_added = '2026-03-10 00:30:00', date_modified = '2026-10-25 02:30:00', "
        "date_ordered = '2026-03-10' WHERE return_id = 501",
        # 02:30 on 2026-03-29 does not exist in Berlin (clocks jump 02:00 -> 03:00): shifted forward
        "UPDATE oc_return_history SET date_added = '2026-03-29 02:30:00' WHERE return_history_id = 1",
        "UPDATE oc_return_history SET date_added = '2026-03-10 00:30:00' WHERE return_history_id = 2")
    snap = read(db, timezone="Europe/Berlin")
    order = snap.orders.filter(order_id=1001).row(0, named=True)
    assert order["date_added"] == datetime(2026, 3, 9, 23, 30)
    assert order["date_modified"] == datetime(2026, 7, 1, 10, 0)     # summer time: UTC+2
    assert snap.products.filter(product_id=11)["date_modified"][0] == datetime(2026, 3, 9, 23, 30)
    ret = returns_by_id(snap)[501]
    assert ret["date_added"] == datetime(2026, 3, 9, 23, 30)
    assert ret["date_modified"] == datetime(2026, 10, 25, 0, 30)     # ambiguous: first occurrence (fold=0)
    assert ret["date_ordered"] == date(2026, 3, 10)                  # a DATE: unchanged
    history = {r["return_history_id"]: r["date_added"] for r in snap.return_history.iter_rows(named=True)}
    assert history[1] == datetime(2026, 3, 29, 1, 30)                # = 03:30 CEST
    assert history[2] == datetime(2026, 3, 9, 23, 30)
    # the default is UTC: written as read
    utc = read(db)
    assert utc.orders.filter(order_id=1001)["date_added"][0] == datetime(2026, 3, 10, 0, 30)


def test_a_datetime_out_of_range_in_utc_is_a_reject_not_a_crash(db):
    sql(db, "UPDATE oc_order SET date_modified = '0001-01-01 00:10:00' WHERE order_id = 1002")
    snap = read(db, timezone="Europe/Berlin")
    assert 1002 not in set(snap.orders["order_id"])
    assert "date_modified" in rejects_by_key(snap)["order:1002"]["reason"]


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "europe/berlin", "", "../etc/passwd", "Europe"])
def test_unknown_time_zone_is_source_unavailable(db, name):
    with pytest.raises(SourceUnavailable) as raised:
        read(db, timezone=name)
    assert str(raised.value) == f"STOREFRONT_TIMEZONE {name!r} is not an IANA time zone"
    assert "\n" not in str(raised.value)


def test_storefront_timezone_setting_is_wired_into_the_resource():
    assert load_settings({}).storefront_timezone == "UTC"
    assert load_settings({"STOREFRONT_TIMEZONE": ""}).storefront_timezone == "UTC"
    settings = load_settings({"STOREFRONT_TIMEZONE": "Europe/Berlin"})
    assert settings.storefront_timezone == "Europe/Berlin"
    assert build_resources(settings, env={})["storefront"].timezone == "Europe/Berlin"
    assert StorefrontResource(db_url="sqlite://").timezone == "UTC"


# --------------------------------------------------------------------------- 6. reject grain columns

def test_rejects_name_the_grains_of_the_rejected_record(db):
    sql(db,
        "UPDATE oc_order SET total = 'lots' WHERE order_id = 1002",                 # order:1002
        "INSERT INTO oc_order_product VALUES (70, 8888, 11, 'Blue Kettle', 'SKU-A', 1, '1', '1', '0', 0)",
        "UPDATE oc_product SET price = 'n/a' WHERE product_id = 15",
        "UPDATE oc_return SET order_id = 'abc' WHERE return_id = 506")             # unreadable order id
    snap = read(db)
    assert list(snap.rejects.columns) == list(REJECTS_SCHEMA)
    grains = {row["record_key"]: tuple(row[c] for c in GRAIN_COLUMNS) for row in snap.rejects.iter_rows(named=True)}
    # (order_reference, order_line_reference, rma_reference, return_reference, credit_note_number)
    assert grains["order:1002"] == ("1002", None, None, None, None)
    assert grains["order_product:3"] == ("1002", "3", None, None, None)     # its order was rejected
    assert grains["order_product:70"] == ("8888", "70", None, None, None)
    assert grains["product:15"] == (None, None, None, None, None)
    assert grains["RMA-505"] == ("9999", None, "RMA-505", None, None)
    assert grains["RMA-506"] == (None, None, "RMA-506", None, None)
    assert grains["RMA-507"] == ("1003", None, "RMA-507", None, None)
    assert grains["RMA-4242/history:8"] == (None, None, "RMA-4242", None, None)


def test_reject_grains_reach_recon_rejects(db, tmp_path):
    import dagster as dg

    from assets.sources.storefront import storefront_snapshot
    from pipelines.resources.config import ReconConfigResource
    from pipelines.resources.warehouse import WarehouseResource
    from pipelines.settings import DEFAULT_CONFIG_PATH

    warehouse = tmp_path / "warehouse.duckdb"
    result = dg.materialize([storefront_snapshot], partition_key="2026-03-31", resources={
        "storefront": StorefrontResource(db_url=f"sqlite:///{db}"),
        "warehouse": WarehouseResource(path=str(warehouse)),
        "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH)),
    })
    assert result.success
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = dict((k, (o, r)) for k, o, r in con.execute(
            "SELECT record_key, order_reference, rma_reference FROM recon.rejects WHERE source = 'storefront'"
        ).fetchall())
    finally:
        con.close()
    assert rows["RMA-505"] == ("9999", "RMA-505")
    assert rows["RMA-4242/history:8"] == (None, "RMA-4242")


# --------------------------------------------------------------------------- 7. reject payloads

def test_reject_payloads_hold_only_the_allow_listed_columns(db):
    sql(db, "UPDATE oc_order SET total = 'lots' WHERE order_id = 1002",
        "UPDATE oc_product SET price = 'n/a' WHERE product_id = 15")
    snap = read(db)
    tables = {"order:": "raw.oc_orders", "order_product:": "raw.oc_order_lines", "product:": "raw.oc_products"}
    seen = set()
    for row in snap.rejects.iter_rows(named=True):
        key = row["record_key"]
        table = ("raw.oc_return_history" if "/history:" in key else "raw.oc_returns" if key.startswith("RMA-")
                 else next(t for prefix, t in tables.items() if key.startswith(prefix)))
        fields = json.loads(row["payload"])
        assert set(fields) <= set(allow_list(MODELS[table])), key  # the allow-list: the model's fields
        assert not set(fields) & PERSONAL_COLUMNS, key
        assert not any(needle in row["payload"] for needle in PERSONAL), key
        seen.add(table)
    assert seen == set(MODELS)
    assert json.loads(rejects_by_key(snap)["RMA-507"]["payload"])["product"] == "Ghost"  # the product name is fine
    # anything outside the allow-list is left out, whatever the row holds
    row = {"return_id": 1, "email": "x@example.invalid", "firstname": "A", "comment": "call me", "extra": 1}
    assert json.loads(payload(Return, row)) == {"return_id": 1}


# --------------------------------------------------------------------------- 8. abandoned checkouts

def test_orders_with_status_0_load_as_read(db):
    sql(db,
        "INSERT INTO oc_order (order_id, store_id, customer_id, total, order_status_id, currency_code, "
        "currency_value, date_added, date_modified) VALUES (3001, 0, 0, '25.0000', 0, 'EUR', '1.00000000', "
        "'2026-03-25 10:00:00', '0000-00-00 00:00:00')",
        "INSERT INTO oc_order_product VALUES (95, 3001, 11, 'Blue Kettle', 'SKU-A', 1, '25.0000', '25.0000', "
        "'0.0000', 0)",
        "INSERT INTO oc_return (return_id, order_id, product_id, customer_id, product, model, quantity, opened, "
        "return_reason_id, return_action_id, return_status_id, date_ordered, date_added, date_modified) "
        "VALUES (701, 3001, 11, 0, 'Blue Kettle', 'SKU-A', 1, 0, 3, 0, 7, '2026-03-25', '2026-03-26 10:00:00', "
        "'2026-03-26 10:00:00')")
    snap = read(db, timezone="Europe/Berlin")
    order = snap.orders.filter(order_id=3001).row(0, named=True)
    assert (order["order_status_id"], order["order_status_name"]) == (0, None)
    assert 95 in set(snap.order_lines["order_product_id"])
    assert 701 in set(snap.returns["return_id"])  # raw as read; the canonical SQL leaves the order out
    assert not {k for k in snap.rejects["record_key"] if k in ("order:3001", "order_product:95", "RMA-701")}


# --------------------------------------------------------------------------- 9. the models decide

def test_a_reject_reason_is_the_models_and_names_every_bad_column(db):
    """Two bad columns of one row: both are in the reason, each named by its column, in the
    model's field order, worded as the model words them; a rule across records follows them."""
    sql(db, "UPDATE oc_order_product SET quantity = 'many', price = 'cheap' WHERE order_product_id = 2",
        "UPDATE oc_return SET opened = 'yes', date_modified = 'soon', order_id = 9999 WHERE return_id = 502")
    snap = read(db)
    rej = rejects_by_key(snap)
    assert rej["order_product:2"]["reason"] == "quantity is not an integer: 'many'; price is not a number: 'cheap'"
    row = {"return_id": 502, "order_id": 9999, "quantity": 2, "opened": "yes", "date_added": "2026-03-19 12:00:00",
           "date_modified": "soon"}
    record, reason = validate(Return, row, {"zone": timezone.utc})
    assert record is None
    assert reason == "opened is not an integer: 'yes'; date_modified is not an ISO-8601 timestamp: 'soon'"
    assert rej["RMA-502"]["reason"] == f"{reason}; order 9999 does not exist"
    # a bad value leaves the rest of the row readable: the grains still name it
    assert (rej["RMA-502"]["order_reference"], rej["RMA-502"]["rma_reference"]) == ("9999", "RMA-502")
    assert 2 not in set(snap.order_lines["order_product_id"]) and 502 not in set(snap.returns["return_id"])


def test_a_reject_payload_holds_exactly_the_models_fields_as_read(db):
    sql(db, "UPDATE oc_return SET quantity = 'two' WHERE return_id = 502",
        "UPDATE oc_return_history SET notify = 'x' WHERE return_history_id = 3")
    rej = rejects_by_key(read(db))
    rma = json.loads(rej["RMA-502"]["payload"])
    assert list(rma) == list(Return.model_fields)          # every field, nothing else
    assert rma["quantity"] == "two" and rma["model"] == "SKU-B" and rma["date_added"] == "2026-03-19 12:00:00"
    history = json.loads(rej["RMA-501/history:3"]["payload"])
    assert list(history) == list(ReturnHistory.model_fields)
    assert history["tracking_id"] == "NEWTRACK5678" and "comment" not in history  # the number, never the note
    assert not any(needle in rej["RMA-501/history:3"]["payload"] for needle in PERSONAL)  # the comment has an email
    for model in MODELS.values():
        assert not PERSONAL_COLUMNS & set(model.model_fields), model


def test_models_fields_are_the_raw_tables_columns():
    for table, (_, schema) in RAW_TABLES.items():
        assert list(MODELS[table].model_fields) == list(schema), table
    ddl = (Path(__file__).parent.parent / "sql" / "schema" / "create_raw_storefront_tables.sql").read_text()
    for table, model in MODELS.items():
        body = ddl.split(f"CREATE TABLE IF NOT EXISTS {table} (")[1].split(");")[0]
        columns = [line.split()[0] for line in body.strip().splitlines() if line.strip()]
        assert columns == [*model.model_fields, "valid_from", "valid_to", "row_hash"], table


column_values = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.binary(max_size=6),
    st.sampled_from(["", " 12 ", "-0", "0.0", "-0.0", "1e5", "9999999999.99995", "12.34565", "0x10", "٣"]))


def _read(read, value):
    try:
        return "value", read(value)
    except ValueError as exc:
        return "error", str(exc)


@settings(max_examples=400, deadline=None)
@given(column_values)
def test_column_types_read_every_value_as_the_base_types_do(value):
    """The storefront's column types only add a fast path (an int, a str, a price seen before):
    values and reasons are those of the shared base types, also when read twice (remembered)."""
    pairs = [
        (storefront_records.Id, lambda v: read_integer(v, bits=64)),
        (storefront_records.Int, lambda v: read_integer(v, bits=32)),
        (storefront_records.Varchar, lambda v: read_text(v, blank_is_null=False)),
        (storefront_records.Money, lambda v: read_decimal(v, precision=15, scale=4, exact=False)),
        (storefront_records.Rate, lambda v: read_decimal(v, precision=15, scale=8, exact=False)),
    ]
    for column_type, base in pairs:
        adapter = TypeAdapter(column_type)

        def fast(v, adapter=adapter):
            try:
                return adapter.validate_python(v)
            except ValidationError as exc:
                raise ValueError(str(exc.errors()[0]["ctx"]["error"])) from None

        expected = _read(base, value)
        for _ in range(2):
            got = _read(fast, value)
            assert got == expected and type(got[1]) is type(expected[1]), (column_type, value)
            if isinstance(got[1], Decimal):
                assert str(got[1]) == str(expected[1])  # -0.0000 stays -0.0000, 1.5000 stays 1.5000
