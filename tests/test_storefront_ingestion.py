"""Storefront (OpenCart) ingestion: a hand-built SQLite OpenCart database -> raw.oc_* and recon.rejects."""
from __future__ import annotations

import json
import logging
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa

from assets.sources.storefront import storefront_snapshot
from pipelines.config import load_config
from pipelines.errors import SourceUnavailable
from pipelines.resources.config import ReconConfigResource
from pipelines.resources.storefront import StorefrontResource
from pipelines.resources.warehouse import WarehouseResource
from pipelines.settings import DEFAULT_CONFIG_PATH

PARTITION = "2026-03-31"
OTHER_PARTITION = "2026-03-30"

# Fake personal data: none of these strings may ever reach the warehouse.
FIRSTNAME = "Zorbalina"
LASTNAME = "Quackenbush"
EMAIL = "zorbalina.quackenbush@example.invalid"
PHONE = "+49-555-0199-4242"
ADDRESS = "17 Rue des Secrets"
PERSONAL = (FIRSTNAME, LASTNAME, EMAIL, PHONE, "555-0199", ADDRESS, "example.invalid")

OPENCART_DDL = """
CREATE TABLE {p}order (
    order_id INTEGER PRIMARY KEY, invoice_prefix VARCHAR(26), store_id INTEGER, customer_id INTEGER,
    firstname VARCHAR(32), lastname VARCHAR(32), email VARCHAR(96), telephone VARCHAR(32),
    payment_address_1 VARCHAR(128), shipping_address_1 VARCHAR(128), comment TEXT,
    total DECIMAL(15,4), order_status_id INTEGER, currency_code VARCHAR(3), currency_value DECIMAL(15,8),
    ip VARCHAR(40), date_added DATETIME, date_modified DATETIME);
CREATE TABLE {p}order_product (
    order_product_id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER, name VARCHAR(255),
    model VARCHAR(64), quantity INTEGER, price DECIMAL(15,4), total DECIMAL(15,4), tax DECIMAL(15,4),
    reward INTEGER);
CREATE TABLE {p}order_status (order_status_id INTEGER, language_id INTEGER, name VARCHAR(32),
    PRIMARY KEY (order_status_id, language_id));
CREATE TABLE {p}product (
    product_id INTEGER PRIMARY KEY, model VARCHAR(64), sku VARCHAR(64), quantity INTEGER, price DECIMAL(15,4),
    subtract INTEGER, status INTEGER, date_added DATETIME, date_modified DATETIME);
CREATE TABLE {p}return (
    return_id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER, customer_id INTEGER,
    firstname VARCHAR(32), lastname VARCHAR(32), email VARCHAR(96), telephone VARCHAR(32),
    product VARCHAR(255), model VARCHAR(64), quantity INTEGER, opened INTEGER, return_reason_id INTEGER,
    return_action_id INTEGER, return_status_id INTEGER, comment TEXT, date_ordered DATE,
    date_added DATETIME, date_modified DATETIME);
CREATE TABLE {p}return_history (
    return_history_id INTEGER PRIMARY KEY, return_id INTEGER, return_status_id INTEGER, notify INTEGER,
    comment TEXT, date_added DATETIME);
CREATE TABLE {p}return_status (return_status_id INTEGER, language_id INTEGER, name VARCHAR(32),
    PRIMARY KEY (return_status_id, language_id));
CREATE TABLE {p}return_reason (return_reason_id INTEGER, language_id INTEGER, name VARCHAR(128),
    PRIMARY KEY (return_reason_id, language_id));
CREATE TABLE {p}return_action (return_action_id INTEGER, language_id INTEGER, name VARCHAR(64),
    PRIMARY KEY (return_action_id, language_id));
"""

# Odd ids; language 2 rows first and with other names (some of them valid language-1 names!).
RETURN_STATUSES = [
    (7, 2, "Ausstehend"), (7, 1, "Pending"),
    (12, 2, "Wartet auf Ware"), (12, 1, "Awaiting Products"),
    (19, 2, "Abgeschlossen"), (19, 1, "Complete"),
    (23, 2, "Abgelehnt"), (23, 1, "REJECTED"),           # case-insensitive match
    (31, 2, "Complete"), (31, 1, "Lost in Space"),        # unknown name in language 1
    (44, 2, "Pending"), (44, 1, "On Hold Forever"),       # valid only in language 2
]
RETURN_ACTIONS = [(5, 2, "Erstattet"), (5, 1, "Refunded"), (9, 1, "Credit Issued"), (9, 2, "Gutschrift"),
                  (14, 1, "Replacement Sent"), (77, 1, "Sent to the Moon"), (77, 2, "Refunded")]
RETURN_REASONS = [(3, 1, "Faulty, please supply details"), (3, 2, "Defekt"), (4, 1, "Wrong item"), (4, 2, "Falsch")]
ORDER_STATUSES = [(5, 1, "Complete"), (5, 2, "Fertig"), (15, 1, "Processed"), (15, 2, "Bearbeitet")]

ORDERS = [  # order_id, store_id, customer_id, total, status, currency, rate, added, modified
    (1001, 0, 501, "129.9000", 5, "EUR", "1.00000000", "2026-03-01 10:00:00", "2026-03-02 11:00:00"),
    (1002, 0, 502, "59.5000", 15, "USD", "1.08120000", "2026-03-03 09:30:00", "2026-03-03 09:30:00"),
    (1003, 1, 503, "80.0000", 5, "EUR", "1.00000000", "2026-03-05 14:00:00", "0000-00-00 00:00:00"),
]
ORDER_LINES = [  # order_product_id, order_id, product_id, name, model, qty, price, total, tax
    (1, 1001, 11, "Blue Kettle", "SKU-A", 1, "50.0000", "50.0000", "9.5000"),
    (2, 1001, 12, "Red Toaster", "SKU-B", 2, "29.9500", "59.9000", "5.6905"),
    (3, 1002, 13, "Green Lamp", "SKU-C", 1, "50.0000", "50.0000", "9.5000"),
    (4, 1003, 14, "Desk Fan", "SKU-D", 1, "40.0000", "40.0000", "0.0000"),
    (5, 1003, 15, "Mug", "SKU-E", 2, "20.0000", "40.0000", "0.0000"),
]
PRODUCTS = [  # product_id, model, qty, price, subtract, status, modified
    (11, "SKU-A", 10, "50.0000", 1, 1, "2026-03-10 08:00:00"),
    (12, "SKU-B", 0, "29.9500", 1, 1, "0000-00-00 00:00:00"),
    (13, "SKU-C", 5, "50.0000", 1, 1, ""),
    (14, "SKU-D", 3, "40.0000", 1, 1, "2026-03-10 08:00:00"),
    (15, "SKU-E", 7, "20.0000", 0, 1, "2026-03-10 08:00:00"),
]
# return_id, order_id, product_id, product, model, qty, reason, action, status, date_ordered
RETURNS = [
    (501, 1001, 11, "Blue Kettle", "SKU-A", 1, 3, 0, 12, "0000-00-00"),       # ok, no action yet
    (502, 1001, 12, "Red Toaster", "SKU-B", 2, 4, 5, 19, "2026-03-01"),        # ok
    (503, 1002, 13, "Green Lamp", "SKU-C", 1, 3, 5, 31, "2026-03-03"),         # unknown status: loads
    (504, 1002, 13, "Green Lamp", "SKU-C", 1, 3, 5, 44, "2026-03-03"),         # name only in lang 2: loads
    (505, 9999, 11, "Blue Kettle", "SKU-A", 1, 3, 5, 7, "2026-03-03"),         # order does not exist
    (506, 1003, 14, "Desk Fan", "SKU-D", 0, 3, 5, 7, "2026-03-05"),            # quantity 0
    (507, 1003, 777, "Ghost", "SKU-ZZZ", 1, 3, 5, 7, "2026-03-05"),            # no such order line
    (508, 1003, 14, "Desk Fan", "SKU-D", 1, 3, 77, 7, "2026-03-05"),           # unknown action: loads
    (509, 1003, 15, "Mug", "SKU-E", 1, 4, 9, 23, "2026-03-05"),                # ok, status 'REJECTED'
]
VALID_RETURNS = {501, 502, 503, 504, 508, 509}
HISTORY = [  # return_history_id, return_id, status, notify, comment, date_added
    (1, 501, 7, 0, f"Customer {FIRSTNAME} {LASTNAME} called from {PHONE}", "2026-03-20 09:00:00"),
    (2, 501, 12, 1, "Parcel on its way. Tracking no: OLDTRACK1234", "2026-03-21 09:00:00"),
    (3, 501, 12, 0, f"Corrected, the real tracking number: NEWTRACK5678 (mail {EMAIL})", "2026-03-22 09:00:00"),
    (4, 501, 12, 0, "reminder sent, no tracking yet", "2026-03-23 09:00:00"),
    (5, 502, 7, 0, "", "2026-03-02 10:00:00"),
    (6, 502, 19, 1, None, "2026-03-04 10:00:00"),
    (7, 509, 23, 0, "tracking#ABCDEF123456", "2026-03-06 10:00:00"),
    (8, 4242, 7, 0, "history of a return that does not exist", "2026-03-06 10:00:00"),
]
VALID_HISTORY = {1, 2, 3, 4, 5, 6, 7}


def build_opencart(path: Path, prefix: str = "oc_") -> Path:
    con = sqlite3.connect(path)
    con.executescript(OPENCART_DDL.format(p=prefix))
    con.executemany(f"INSERT INTO {prefix}return_status VALUES (?,?,?)", RETURN_STATUSES)
    con.executemany(f"INSERT INTO {prefix}return_action VALUES (?,?,?)", RETURN_ACTIONS)
    con.executemany(f"INSERT INTO {prefix}return_reason VALUES (?,?,?)", RETURN_REASONS)
    con.executemany(f"INSERT INTO {prefix}order_status VALUES (?,?,?)", ORDER_STATUSES)
    for o in ORDERS:
        con.execute(
            f"""INSERT INTO {prefix}order (order_id, invoice_prefix, store_id, customer_id, firstname, lastname,
                email, telephone, payment_address_1, shipping_address_1, comment, total, order_status_id,
                currency_code, currency_value, ip, date_added, date_modified)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (o[0], "INV-", o[1], o[2], FIRSTNAME, LASTNAME, EMAIL, PHONE, ADDRESS, ADDRESS,
             f"Leave it with {FIRSTNAME}", o[3], o[4], o[5], o[6], "203.0.113.9", o[7], o[8]))
    con.executemany(
        f"""INSERT INTO {prefix}order_product (order_product_id, order_id, product_id, name, model, quantity,
            price, total, tax, reward) VALUES (?,?,?,?,?,?,?,?,?,0)""", ORDER_LINES)
    con.executemany(
        f"""INSERT INTO {prefix}product (product_id, model, sku, quantity, price, subtract, status, date_added,
            date_modified) VALUES (?,?,'',?,?,?,?,'2026-01-01 00:00:00',?)""", PRODUCTS)
    for r in RETURNS:
        con.execute(
            f"""INSERT INTO {prefix}return (return_id, order_id, product_id, customer_id, firstname, lastname,
                email, telephone, product, model, quantity, opened, return_reason_id, return_action_id,
                return_status_id, comment, date_ordered, date_added, date_modified)
                VALUES (?,?,?,?,?,?,?,?,?,?,?,0,?,?,?,?,?,'2026-03-19 12:00:00','2026-03-22 09:00:00')""",
            (r[0], r[1], r[2], 501, FIRSTNAME, LASTNAME, EMAIL, PHONE, r[3], r[4], r[5], r[6], r[7], r[8],
             f"{FIRSTNAME} says it arrived broken, call {PHONE}", r[9]))
    con.executemany(f"INSERT INTO {prefix}return_history VALUES (?,?,?,?,?,?)", HISTORY)
    con.commit()
    con.close()
    return path


@pytest.fixture()
def world(tmp_path):
    db = build_opencart(tmp_path / "storefront.sqlite")
    return {
        "db": db,
        "warehouse": tmp_path / "warehouse.duckdb",
        "resources": {
            "storefront": StorefrontResource(db_url=f"sqlite:///{db}"),
            "warehouse": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
            "recon_config": ReconConfigResource(config_path=str(DEFAULT_CONFIG_PATH)),
        },
    }


def materialize(world, partition=PARTITION, **kwargs):
    return dg.materialize([storefront_snapshot], partition_key=partition, resources=world["resources"], **kwargs)


def query(world, sql, params=None):
    con = duckdb.connect(str(world["warehouse"]), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def source_count(world, table):
    con = sqlite3.connect(world["db"])
    try:
        return con.execute(f"SELECT count(*) FROM oc_{table}").fetchone()[0]
    finally:
        con.close()


def rejects(world, partition=PARTITION):
    rows = query(world, "SELECT record_key, reason, payload FROM recon.rejects "
                        "WHERE source = 'storefront' AND business_date = $d ORDER BY record_key",
                 {"d": date.fromisoformat(partition)})
    return {key: (reason, payload) for key, reason, payload in rows}


# --------------------------------------------------------------------------- row counts, reruns, partitions

def test_row_counts_equal_the_source(world):
    result = materialize(world)
    assert result.success
    d = date.fromisoformat(PARTITION)
    counts = {t: query(world, f"SELECT count(*) FROM raw.{t}_at($d)", {"d": d})[0][0]
              for t in ("oc_orders", "oc_order_lines", "oc_products", "oc_returns", "oc_return_history")}
    assert counts["oc_orders"] == source_count(world, "order") == 3
    assert counts["oc_order_lines"] == source_count(world, "order_product") == 5
    assert counts["oc_products"] == source_count(world, "product") == 5
    assert counts["oc_returns"] == len(VALID_RETURNS)
    assert counts["oc_return_history"] == len(VALID_HISTORY)
    # every source return is either loaded or rejected, never silently dropped
    got = {r[0] for r in query(world, "SELECT return_id FROM raw.oc_returns_at($d)", {"d": d})}
    assert got == VALID_RETURNS
    rma_rejects = {k for k in rejects(world) if k.startswith("RMA-") and "/" not in k}
    assert got | {int(k[4:]) for k in rma_rejects} == {r[0] for r in RETURNS}
    # dagster/row_count on every asset
    row_counts = {
        m.asset_key.path[-1]: m.metadata["dagster/row_count"].value
        for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
    }
    assert row_counts == counts


def test_values_and_types(world):
    materialize(world)
    d = date.fromisoformat(PARTITION)
    order = query(world, "SELECT total, currency_code, currency_value, order_status_name, date_added, date_modified "
                         "FROM raw.oc_orders_at($d) WHERE order_id = 1002", {"d": d})[0]
    assert order == (Decimal("59.5000"), "USD", Decimal("1.08120000"), "Processed",
                     datetime(2026, 3, 3, 9, 30), datetime(2026, 3, 3, 9, 30))
    line = query(world, "SELECT model, quantity, price, tax FROM raw.oc_order_lines_at($d) "
                        "WHERE order_product_id = 2", {"d": d})[0]
    assert line == ("SKU-B", 2, Decimal("29.9500"), Decimal("5.6905"))
    ret = query(world, "SELECT order_id, model, quantity, return_reason_name, return_action_id, return_action_name, "
                       "return_status_name FROM raw.oc_returns_at($d) WHERE return_id = 502",
                {"d": d})[0]
    assert ret == (1001, "SKU-B", 2, "Wrong item", 5, "Refunded", "Complete")


def test_rerun_same_partition_changes_nothing_and_other_dates_are_separate(world):
    materialize(world)
    tables = ("oc_orders", "oc_order_lines", "oc_products", "oc_returns", "oc_return_history")

    def snapshot():
        out = {t: sorted(map(repr, query(world, f"SELECT * FROM raw.{t} ORDER BY ALL"))) for t in tables}
        out["rejects"] = sorted(map(repr, query(world, "SELECT * FROM recon.rejects ORDER BY ALL")))
        return out

    first = snapshot()
    materialize(world)
    assert snapshot() == first
    keys = {"oc_orders": "order_id", "oc_order_lines": "order_product_id", "oc_products": "product_id",
            "oc_returns": "return_id", "oc_return_history": "return_history_id"}
    for table, key in keys.items():  # one version per row, in force
        total, distinct, current = query(world, f"SELECT count(*), count(DISTINCT {key}), "
                                                f"count(*) FILTER (valid_to IS NULL) FROM raw.{table}")[0]
        assert total == distinct == current > 0, table

    materialize(world, partition=OTHER_PARTITION)
    # another date over an unchanged source writes no version: only its fetch and its rejects
    assert {t: v for t, v in snapshot().items() if t != "rejects"} == {t: v for t, v in first.items() if t != "rejects"}
    assert query(world, "SELECT count(*) FROM state.storefront_fetches")[0][0] == 2
    assert rejects(world, OTHER_PARTITION) == rejects(world, PARTITION)
    # both dates read the same rows, each at its own fetch
    d1, d2 = date.fromisoformat(PARTITION), date.fromisoformat(OTHER_PARTITION)
    for table in tables:
        at_d1 = sorted(map(repr, query(world, f"SELECT * FROM raw.{table}_at($d) ORDER BY ALL", {"d": d1})))
        assert at_d1 and at_d1 == sorted(map(repr, query(world, f"SELECT * FROM raw.{table}_at($d) ORDER BY ALL",
                                                         {"d": d2}))), table


def test_a_changed_source_replaces_the_partition(world):
    materialize(world)
    con = sqlite3.connect(world["db"])
    con.execute("DELETE FROM oc_return_history WHERE return_history_id = 4")
    con.execute("UPDATE oc_return SET quantity = 1 WHERE return_id = 506")  # fixed: now valid
    con.commit()
    con.close()
    materialize(world)
    d = date.fromisoformat(PARTITION)
    ids = {r[0] for r in query(world, "SELECT return_id FROM raw.oc_returns_at($d)", {"d": d})}
    assert ids == VALID_RETURNS | {506}
    assert "RMA-506" not in rejects(world)
    hist = {r[0] for r in query(world, "SELECT return_history_id FROM raw.oc_return_history_at($d)", {"d": d})}
    assert hist == VALID_HISTORY - {4}


# --------------------------------------------------------------------------- personal data

def test_no_personal_data_anywhere_in_the_warehouse(world):
    materialize(world)
    columns = query(world, "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                           "WHERE data_type = 'VARCHAR'")
    assert any(t == "rejects" for _, t, _ in columns)
    scanned = 0
    for schema, table, column in columns:
        for needle in PERSONAL + ("called from", "arrived broken", "Leave it with", "real tracking number"):
            hits = query(world, f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", $n)',
                         {"n": needle})[0][0]
            assert hits == 0, f"{needle!r} found in {schema}.{table}.{column}"
        scanned += 1
    assert scanned >= 20
    # and no personal column exists at all
    names = {c for _, _, c in query(world, "SELECT table_schema, table_name, column_name "
                                           "FROM information_schema.columns WHERE table_schema = 'raw'")}
    assert not names & {"firstname", "lastname", "email", "telephone", "comment"}


def test_snapshot_frames_hold_no_personal_columns(world):
    snap = StorefrontResource(db_url=f"sqlite:///{world['db']}").read_snapshot(
        load_config().tracking_pattern, load_config().rma_status_map, load_config().rma_action_map)
    for name, frame in snap.frames().items():
        assert not set(frame.columns) & {"firstname", "lastname", "email", "telephone", "comment"}, name
    text = "".join(str(v) for frame in [*snap.frames().values(), snap.rejects] for row in frame.iter_rows()
                   for v in row)
    for needle in PERSONAL:
        assert needle not in text


# --------------------------------------------------------------------------- language, status and action names

def test_names_come_from_language_1_and_unknown_names_are_loaded(world):
    materialize(world)
    d = date.fromisoformat(PARTITION)
    names = {r[0]: r[1:] for r in query(world, "SELECT return_id, return_status_name, return_action_name, "
                                                "return_reason_name FROM raw.oc_returns_at($d)",
                                         {"d": d})}
    assert names[501] == ("Awaiting Products", None, "Faulty, please supply details")
    assert names[502] == ("Complete", "Refunded", "Wrong item")
    assert names[509] == ("REJECTED", "Credit Issued", "Wrong item")
    # unmapped names load as the shop has them (the SQL calls them unknown, the checks report them)
    assert names[503] == ("Lost in Space", "Refunded", "Faulty, please supply details")
    # id 44 is 'Pending' only in language 2: language 1 says 'On Hold Forever', which is what loads
    assert names[504] == ("On Hold Forever", "Refunded", "Faulty, please supply details")
    assert names[508] == ("Pending", "Sent to the Moon", "Faulty, please supply details")
    hist_names = {r[0]: r[1] for r in query(world, "SELECT return_history_id, return_status_name "
                                                   "FROM raw.oc_return_history_at($d)", {"d": d})}
    assert hist_names[1] == "Pending" and hist_names[2] == "Awaiting Products"
    order_names = dict(query(world, "SELECT order_id, order_status_name FROM raw.oc_orders_at($d)",
                             {"d": d}))
    assert order_names == {1001: "Complete", 1002: "Processed", 1003: "Complete"}

    rej = rejects(world)
    assert not {"RMA-503", "RMA-504", "RMA-508"} & set(rej)
    assert "order 9999 does not exist" in rej["RMA-505"][0]
    assert "quantity is not a positive integer" in rej["RMA-506"][0]
    assert "no line" in rej["RMA-507"][0] and "SKU-ZZZ" in rej["RMA-507"][0]
    assert "return 4242 does not exist" in rej["RMA-4242/history:8"][0]
    # payload: JSON of the record's columns, without personal data
    payload = json.loads(rej["RMA-507"][1])
    assert payload["return_id"] == 507 and payload["model"] == "SKU-ZZZ" and payload["product"] == "Ghost"
    assert not set(payload) & {"firstname", "lastname", "email", "telephone", "comment"}


def test_rejects_are_counted_in_metadata(world):
    result = materialize(world)
    meta = {m.asset_key.path[-1]: m.metadata for m in
            (e.event_specific_data.materialization for e in result.get_asset_materialization_events())}
    assert meta["oc_returns"]["rejects"].value == len(RETURNS) - len(VALID_RETURNS)
    assert meta["oc_return_history"]["rejects"].value == 1
    assert meta["oc_returns"]["storefront_rejects_total"].value == len(rejects(world))


# --------------------------------------------------------------------------- tracking numbers, dates

def test_tracking_numbers_latest_matching_comment_wins_and_comments_are_not_stored(world):
    materialize(world)
    d = date.fromisoformat(PARTITION)
    per_row = dict(query(world, "SELECT return_history_id, tracking_id FROM raw.oc_return_history_at($d)", {"d": d}))
    assert per_row == {1: None, 2: "OLDTRACK1234", 3: "NEWTRACK5678", 4: None, 5: None, 6: None, 7: "ABCDEF123456"}
    latest = dict(query(world, "SELECT return_id, arg_max(tracking_id, date_added) FROM raw.oc_return_history_at($d) "
                               "WHERE tracking_id IS NOT NULL GROUP BY return_id", {"d": d}))
    assert latest == {501: "NEWTRACK5678", 509: "ABCDEF123456"}
    columns = {r[0] for r in query(world, "SELECT column_name FROM information_schema.columns "
                                          "WHERE table_name = 'oc_return_history'")}
    assert "comment" not in columns
    for fragment in ("Parcel on its way", "Tracking no:", "reminder sent", "Corrected"):
        for table in ("raw.oc_return_history", "recon.rejects"):
            cols = [c for c in query(world, f"SELECT column_name FROM information_schema.columns WHERE "
                                            f"table_schema || '.' || table_name = '{table}' "
                                            f"AND data_type = 'VARCHAR'")]
            for (col,) in cols:
                assert query(world, f"SELECT count(*) FROM {table} WHERE contains({col}, $f)", {"f": fragment})[0][0] == 0


def test_configured_tracking_pattern_is_used(world, tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tracking_pattern: 'real tracking number:\\s*([A-Z0-9]+)'\n")
    world["resources"]["recon_config"] = ReconConfigResource(config_path=str(cfg))
    materialize(world)
    per_row = dict(query(world, "SELECT return_history_id, tracking_id FROM raw.oc_return_history"))
    assert per_row[3] == "NEWTRACK5678" and per_row[2] is None and per_row[7] is None


def test_mysql_zero_dates_read_as_null(world):
    materialize(world)
    d = date.fromisoformat(PARTITION)
    assert query(world, "SELECT date_ordered FROM raw.oc_returns_at($d) WHERE return_id = 501",
                 {"d": d}) == [(None,)]
    assert query(world, "SELECT date_ordered FROM raw.oc_returns_at($d) WHERE return_id = 502",
                 {"d": d}) == [(date(2026, 3, 1),)]
    assert query(world, "SELECT date_modified FROM raw.oc_orders_at($d) WHERE order_id = 1003",
                 {"d": d}) == [(None,)]
    products = dict(query(world, "SELECT product_id, date_modified FROM raw.oc_products_at($d)",
                          {"d": d}))
    assert products[12] is None and products[13] is None and products[11] == datetime(2026, 3, 10, 8)


def test_bad_values_are_rejected_not_fatal(world):
    con = sqlite3.connect(world["db"])
    con.execute("UPDATE oc_return SET quantity = 'two' WHERE return_id = 502")
    con.execute("UPDATE oc_return SET date_added = 'yesterday-ish' WHERE return_id = 509")
    con.execute("UPDATE oc_product SET price = 'n/a' WHERE product_id = 15")
    con.commit()
    con.close()
    assert materialize(world).success
    rej = rejects(world)
    assert "quantity is not a positive integer: 'two'" in rej["RMA-502"][0]
    assert "date_added" in rej["RMA-509"][0]
    assert "price" in rej["product:15"][0]
    assert {r[0] for r in query(world, "SELECT return_id FROM raw.oc_returns")} == VALID_RETURNS - {502, 509}
    assert query(world, "SELECT count(*) FROM raw.oc_products")[0][0] == 4


def test_table_prefix_is_configurable(tmp_path):
    db = build_opencart(tmp_path / "shop.sqlite", prefix="shop1_")
    snap = StorefrontResource(db_url=f"sqlite:///{db}", table_prefix="shop1_").read_snapshot(
        load_config().tracking_pattern, load_config().rma_status_map, load_config().rma_action_map)
    assert snap.orders.height == 3 and set(snap.returns["return_id"]) == VALID_RETURNS
    with pytest.raises(SourceUnavailable):
        StorefrontResource(db_url=f"sqlite:///{db}").read_snapshot(
            load_config().tracking_pattern, load_config().rma_status_map, load_config().rma_action_map)


# --------------------------------------------------------------------------- secrets

PASSWORD = "S3cr3t-Pa55-w0rd"


def test_unreachable_database_error_hides_the_password():
    resource = StorefrontResource(db_url=f"mysql+pymysql://recon_reader:{PASSWORD}@127.0.0.1:1/opencart")
    cfg = load_config()
    with pytest.raises(SourceUnavailable) as raised:
        resource.read_snapshot(cfg.tracking_pattern, cfg.rma_status_map, cfg.rma_action_map)
    message = str(raised.value)
    assert PASSWORD not in message and PASSWORD not in repr(raised.value)
    assert message.startswith("storefront database unreachable (mysql+pymysql://recon_reader:***@127.0.0.1:1/")
    assert "\n" not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert PASSWORD not in repr(resource)


def test_missing_sqlite_file_is_source_unavailable(tmp_path):
    cfg = load_config()
    with pytest.raises(SourceUnavailable, match="file not found"):
        StorefrontResource(db_url=f"sqlite:///{tmp_path / 'nope.sqlite'}").read_snapshot(
            cfg.tracking_pattern, cfg.rma_status_map, cfg.rma_action_map)
    assert not (tmp_path / "nope.sqlite").exists()


def _event_log_text(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(repr(entry) for entry in instance.all_logs(run_id))


def test_failed_run_logs_never_show_the_password(world, caplog):
    caplog.set_level(logging.DEBUG)
    world["resources"]["storefront"] = StorefrontResource(
        db_url=f"mysql+pymysql://recon_reader:{PASSWORD}@127.0.0.1:1/opencart")
    with dg.instance_for_test() as instance:
        result = materialize(world, instance=instance, raise_on_error=False)
        assert not result.success
        text = _event_log_text(instance, result.run_id)
    assert "storefront database unreachable" in text
    assert PASSWORD not in text
    assert PASSWORD not in caplog.text


def test_successful_run_logs_and_metadata_never_show_the_password(world, caplog, monkeypatch):
    """A password-bearing production URL, served here by the SQLite world (the engine is swapped)."""
    import pipelines.resources.storefront as storefront_module

    real_create_engine = sa.create_engine
    seen_urls = []

    def fake_create_engine(url, **kwargs):
        seen_urls.append(url)
        return real_create_engine(f"sqlite:///{world['db']}", **kwargs)

    monkeypatch.setattr(storefront_module.sa, "create_engine", fake_create_engine)
    caplog.set_level(logging.DEBUG)
    world["resources"]["storefront"] = StorefrontResource(
        db_url=f"mysql+pymysql://recon_reader:{PASSWORD}@db.internal:3306/opencart")
    with dg.instance_for_test() as instance:
        result = materialize(world, instance=instance)
        assert result.success and seen_urls
        text = _event_log_text(instance, result.run_id)
        metadata = [m.metadata for m in (e.event_specific_data.materialization
                                          for e in result.get_asset_materialization_events())]
    assert "recon_reader:***@db.internal" in text  # the run does log where it reads from
    assert PASSWORD not in text
    assert PASSWORD not in repr(metadata)
    assert PASSWORD not in caplog.text
    # nor anywhere in the warehouse
    for schema, table, column in query(world, "SELECT table_schema, table_name, column_name "
                                              "FROM information_schema.columns WHERE data_type = 'VARCHAR'"):
        assert query(world, f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", $p)',
                     {"p": PASSWORD})[0][0] == 0
