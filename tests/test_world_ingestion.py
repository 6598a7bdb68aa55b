"""Storefront and refund-ledger assets on the generated world: loaded counts equal the
world's own counts, the expected malformed ledger lines land in recon.rejects, no personal
data reaches the warehouse."""
from __future__ import annotations

import sqlite3

import dagster as dg

from assets.sources import refund_ledger, storefront
from conftest import WORLD_END, query
from pipelines.resources import build_resources


def test_storefront_and_ledger_counts_equal_the_world(recon_env, demo_world, manifest):
    result = dg.materialize([*storefront.defs.assets, *refund_ledger.defs.assets], partition_key=WORLD_END.isoformat(),
                            resources=build_resources(recon_env))
    assert result.success
    counts = manifest["counts"]
    tables = {"raw.oc_orders": "oc_order", "raw.oc_order_lines": "oc_order_product", "raw.oc_products": "oc_product",
              "raw.oc_returns": "oc_return", "raw.oc_return_history": "oc_return_history"}
    for table, source in tables.items():
        loaded = query(recon_env, f"SELECT count(*) FROM {table}_at($d)", {"d": WORLD_END})[0][0]
        assert loaded == counts[source], table
    # raw.refund_lines keeps every version of a credit note: the world counts (note, order line) pairs
    assert query(recon_env, "SELECT count(DISTINCT (credit_note_number, order_line_reference)) "
                            "FROM raw.refund_lines")[0][0] == counts["refund_lines"]
    assert query(recon_env, "SELECT count(DISTINCT credit_note_number) FROM raw.refund_lines")[0][0] == \
        counts["distinct_credit_notes"]
    rejects = query(recon_env, "SELECT record_key, reason FROM recon.rejects WHERE source = 'refund_ledger'")
    assert len(rejects) == counts["expected_rejects"] == len(manifest["expected_rejects"])
    for expected in manifest["expected_rejects"]:
        name = expected["file"].rsplit("/", 1)[-1]
        assert any(key.startswith(f"{name}:{expected['line']}") for key, _ in rejects), (expected, rejects)

    # personal data of the storefront never reaches the warehouse
    with sqlite3.connect(demo_world / "storefront.sqlite") as db:
        personal = {v for row in db.execute("SELECT firstname, lastname, email, telephone FROM oc_return LIMIT 50")
                    for v in row if v}
    columns = query(recon_env, "SELECT table_schema || '.' || table_name, column_name FROM information_schema.columns "
                               "WHERE data_type = 'VARCHAR'")
    for table, column in columns:
        values = {r[0] for r in query(recon_env, f"SELECT DISTINCT {column} FROM {table} WHERE {column} IS NOT NULL")}
        assert not values & personal, f"personal data in {table}.{column}"
