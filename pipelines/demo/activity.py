"""A day of shop activity on a demo world's OpenCart database (``storefront.sqlite``), for the
change-capture test and the 30-day benchmark: the world itself is written once, with every
record's timestamps, so without this the storefront never changes between runs.

``apply_day(db, day, seed, scale)`` changes, deterministically per (seed, day), what a shop's
day changes, each touched row dated within ``day`` (UTC, as the world writes them):

- new orders, copies of existing ones under new ids, each with its lines;
- new RMAs on lines of those orders, each with its first history row (Pending);
- status changes of open RMAs: ``oc_return`` updated and a history row added;
- stock movements: product quantities changed;
- an order edited in the admin: a line deleted and re-added under a new id (OpenCart's edit
  deletes and re-inserts the order's lines), the order's ``date_modified`` moved;
- an RMA deleted with its history (an admin deleting a test return).

``scale`` is the number of each kind per day (at least one). Returns the counts per kind.
"""
from __future__ import annotations

import random
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

PENDING, AWAITING, COMPLETE = 1, 2, 3  # the world's oc_return_status ids (language 1)


def _max_id(con: sqlite3.Connection, table: str, column: str) -> int:
    return con.execute(f"SELECT coalesce(max({column}), 0) FROM {table}").fetchone()[0]


def apply_day(db: Path, day: date, seed: int = 0, scale: int = 1) -> dict[str, int]:
    rng = random.Random(f"{seed}-{day.isoformat()}")
    start = datetime.combine(day, datetime.min.time())

    def at() -> str:
        return (start + timedelta(seconds=rng.randrange(1, 86_399))).strftime("%Y-%m-%d %H:%M:%S")

    n = max(1, scale)
    counts = dict.fromkeys(("orders", "rmas", "status_changes", "stock_moves", "order_edits", "rma_deletions"), 0)
    con = sqlite3.connect(db)
    try:
        statuses = {name.lower(): sid for sid, name in con.execute(
            "SELECT return_status_id, name FROM oc_return_status WHERE language_id = 1")}
        pending, awaiting, complete = (statuses.get(k, d) for k, d in
                                       (("pending", PENDING), ("awaiting products", AWAITING), ("complete", COMPLETE)))
        order_ids = [r[0] for r in con.execute("SELECT order_id FROM oc_order WHERE order_status_id > 0 ORDER BY 1")]
        next_order, next_line = _max_id(con, "oc_order", "order_id"), _max_id(con, "oc_order_product", "order_product_id")
        next_return, next_history = _max_id(con, "oc_return", "return_id"), _max_id(con, "oc_return_history",
                                                                                     "return_history_id")
        new_lines = []
        for template in rng.sample(order_ids, min(n, len(order_ids))):
            next_order += 1
            when = at()
            con.execute("INSERT INTO oc_order SELECT ?, store_id, customer_id, email, total, order_status_id, "
                        "currency_code, currency_value, ?, ? FROM oc_order WHERE order_id = ?",
                        (next_order, when, when, template))
            for line in con.execute("SELECT order_product_id FROM oc_order_product WHERE order_id = ? ORDER BY 1",
                                    (template,)).fetchall():
                next_line += 1
                con.execute("INSERT INTO oc_order_product SELECT ?, ?, product_id, name, model, quantity, price, "
                            "total, tax FROM oc_order_product WHERE order_product_id = ?",
                            (next_line, next_order, line[0]))
                new_lines.append((next_order, next_line, when))
            counts["orders"] += 1
        for order_id, line_id, when in new_lines[:n]:
            next_return += 1
            con.execute("INSERT INTO oc_return (return_id, order_id, product_id, customer_id, product, model, "
                        "quantity, opened, return_reason_id, return_action_id, return_status_id, date_ordered, "
                        "date_added, date_modified) SELECT ?, order_id, product_id, 1, name, model, 1, 0, 1, 0, ?, "
                        "substr(?, 1, 10), ?, ? FROM oc_order_product WHERE order_product_id = ?",
                        (next_return, pending, when, when, when, line_id))
            next_history += 1
            con.execute("INSERT INTO oc_return_history VALUES (?, ?, ?, 0, '', ?)",
                        (next_history, next_return, pending, when))
            counts["rmas"] += 1
        open_rmas = [r[0] for r in con.execute("SELECT return_id FROM oc_return WHERE return_status_id IN (?, ?) "
                                               "ORDER BY 1", (pending, awaiting))]
        for return_id in rng.sample(open_rmas, min(n, len(open_rmas))):
            status = con.execute("SELECT return_status_id FROM oc_return WHERE return_id = ?", (return_id,)).fetchone()[0]
            new_status, when = (awaiting if status == pending else complete), at()
            con.execute("UPDATE oc_return SET return_status_id = ?, date_modified = ? WHERE return_id = ?",
                        (new_status, when, return_id))
            next_history += 1
            con.execute("INSERT INTO oc_return_history VALUES (?, ?, ?, 1, '', ?)",
                        (next_history, return_id, new_status, when))
            counts["status_changes"] += 1
        products = [r[0] for r in con.execute("SELECT product_id FROM oc_product ORDER BY 1")]
        for product_id in rng.sample(products, min(n, len(products))):
            con.execute("UPDATE oc_product SET quantity = max(0, quantity + ?) WHERE product_id = ?",
                        (rng.choice([-2, -1, 1, 3]), product_id))
            counts["stock_moves"] += 1
        # an order edit: one line of an order without RMAs deleted and re-added under a new id
        editable = [r for r in con.execute(
            "SELECT l.order_id, l.order_product_id FROM oc_order_product l WHERE NOT EXISTS "
            "(SELECT 1 FROM oc_return r WHERE r.order_id = l.order_id) ORDER BY 2 LIMIT 5000")]
        for order_id, line_id in rng.sample(editable, min(n, len(editable))):
            next_line += 1
            con.execute("INSERT INTO oc_order_product SELECT ?, order_id, product_id, name, model, quantity, price, "
                        "total, tax FROM oc_order_product WHERE order_product_id = ?", (next_line, line_id))
            con.execute("DELETE FROM oc_order_product WHERE order_product_id = ?", (line_id,))
            con.execute("UPDATE oc_order SET date_modified = ? WHERE order_id = ?", (at(), order_id))
            counts["order_edits"] += 1
        deletable = [r[0] for r in con.execute("SELECT return_id FROM oc_return WHERE return_status_id = ? "
                                               "ORDER BY 1", (pending,))]
        for return_id in rng.sample(deletable, min(1, len(deletable))):
            con.execute("DELETE FROM oc_return_history WHERE return_id = ?", (return_id,))
            con.execute("DELETE FROM oc_return WHERE return_id = ?", (return_id,))
            counts["rma_deletions"] += 1
        con.commit()
    finally:
        con.close()
    return counts
