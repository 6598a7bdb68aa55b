"""Deterministic demo world: every source the pipeline reads, plus the answer key.

``generate_world(out_dir, seed=7, n_returns=300, end_date=D)`` writes

* ``storefront.sqlite``  OpenCart tables (prefix ``oc_``, columns of sources.md section 2);
* ``wms/returns.jsonl``, ``wms/stock_adjustments.jsonl``, ``wms/stocks.jsonl``  OPLOG API shape;
* ``ledger/oms-messages-YYYY-MM-DD.jsonl``  OMS JSON-RPC messages, one file per day;
* ``manifest.json``  arguments, times, credentials of the emulator, row counts, expected rejects,
  the tracking ``probe_case``;
* ``ground_truth.json``  every discrepancy the rules of reconciliation.md yield as of
  ``T = D+1 00:00 UTC`` on the whole world, and the look-alikes that must not fire.

Command line: ``python -m pipelines.demo.world OUT_DIR --seed 7 --returns 300 --end-date 2024-03-10``.

Time model: business date D = ``end_date``, ``T`` = D+1 00:00:00 UTC, the world is a snapshot
taken at ``now`` = T + 6 h (events after ``now`` do not exist; events in (T, now] exist and must be
ignored for D). Returns are created in [T-60d, T).

Determinism: one ``random.Random(seed)`` drives everything, in a fixed order; no wall clock, no
hash-ordered iteration. Identical arguments give byte-identical files.

Scale: records are streamed (SQLite ``executemany`` in batches, JSON lines written as produced);
only products, ground truth and a few counters stay in memory, so 1,000,000 returns run in
minutes with bounded memory.

Structure
---------
``World`` holds the writers and the primitives, each of which writes (or buffers) exactly what a
real source would hold at ``now``:

* ``order(...)``             an ``oc_order`` with its ``oc_order_product`` lines;
* ``new_rma(...)`` -> ``Rma`` with ``.to(t, status)`` / ``.note(t, comment)``, then ``commit_rma``;
* ``new_wms(...)`` -> ``Wms`` with ``.add(...)`` items, then ``commit_wms``;
* ``adjust(...)``            a stock adjustment;  ``refund(...)`` a credit-note message;
* ``flow(...)``              one whole RMA lifecycle (RMA, tracking, WMS return, grading,
  restock, refund, closing) with every step overridable: the background and most cases use it.

The background (``World.background_group``) is clean: it fires no rule at T nor at any earlier T.

Real shops' shapes (reconciliation.md "As of T, precisely") come from dedicated cases and
look-alikes: option variants (two ``oc_order_product`` rows of one SKU at different prices, one
order line of the rules whose ``order_line_reference`` lists both ids), credit notes in several
versions (released only after T; a stale PENDING redelivered in a later file), units graded after
T, the unmapped status "On Hold" and the spelling "Canceled", models typed on the return form
(``product_id`` 0), abandoned checkouts (``order_status_id`` 0), 3-decimal refund amounts, refunds
in another currency than the order's, and WMS records whose timestamps carry 0 or 3 fractional
digits (``wms_digits``).

Adding an injected case
-----------------------
Write ``def case_something(w: World, i: int) -> None`` (``i`` = instance number, use
``i % n`` to pick a variant) that builds its own fresh orders with the primitives, and records
every rule it makes fire with ``w.expect(sid, RULE, keys, amount, quantity_gap)``: an injected
case often makes several rules fire, list each one (see the co-firing notes on every case).
Register it in ``CASES`` (``(primary_rule, function)``): ``3 + n_returns // 200`` instances are
generated per entry. A look-alike is the same, recorded with ``w.lookalike(...)`` and registered
in ``LOOKALIKES`` (``(kind, function, max_instances or None)``). Cases use their own orders
(and their own SKUs whenever stock levels are involved) so they never interfere.
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import uuid
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Callable

# --------------------------------------------------------------------------- constants

US = 1_000_000  # times are integer microseconds since the Unix epoch (UTC)
MIN = 60 * US
HOUR = 60 * MIN
DAY = 24 * HOUR
_EPOCH = datetime(1970, 1, 1)

TENANT_ID = "demo-tenant"
TOKEN = "demo-token-3f9c2a71"
PAYMENTS_KEY = "sk_test_demo_4c1e7b90"  # the payment provider's secret key (pipelines.settings.DEMO_PAYMENTS_KEY)
STORE_CURRENCY = "EUR"
CENT = Decimal("0.01")
Q4 = Decimal("0.0001")
BATCH = 5000

CURRENCIES = {"EUR": Decimal("1.0000"), "USD": Decimal("1.0850"), "GBP": Decimal("0.8612"),
              "JPY": Decimal("162.5000")}  # JPY (zero-decimal) only for payment look-alikes

# Return statuses: stock OpenCart ids 1..3, shop-added 4, 5. (id, English, German)
# "On Hold" (6) is a shop-added name the default map does not know (a data-quality warning, the RMA
# still takes part); "Canceled" (7) is OpenCart's own spelling, mapped to CANCELED.
PENDING, AWAITING, COMPLETE, REJECTED, CANCELLED, ON_HOLD, CANCELED_US = 1, 2, 3, 4, 5, 6, 7
RETURN_STATUSES = [(1, "Pending", "Ausstehend"), (2, "Awaiting Products", "Warte auf Artikel"),
                   (3, "Complete", "Abgeschlossen"), (4, "Rejected", "Abgelehnt"),
                   (5, "Cancelled", "Storniert"), (6, "On Hold", "Angehalten"),
                   (7, "Canceled", "Abgebrochen")]
# Actions on ids that are NOT 1..4 in name order: the pipeline must map them by name.
A_REPLACEMENT, A_CREDIT, A_WAITING, A_REFUNDED = 11, 12, 13, 14
RETURN_ACTIONS = [(12, "Credit Issued", "Gutschrift erteilt"), (14, "Refunded", "Erstattet"),
                  (11, "Replacement Sent", "Ersatz versendet"),
                  (13, "Waiting for return", "Warte auf Ruecksendung")]
RETURN_REASONS = [(1, "Dead On Arrival", "Bei Ankunft defekt"),
                  (2, "Received Wrong Item", "Falschen Artikel erhalten"),
                  (3, "Order Error", "Bestellfehler"),
                  (4, "Faulty, please supply details", "Fehlerhaft, bitte Details angeben"),
                  (5, "Other, please supply details", "Sonstiges, bitte Details angeben")]
ORDER_STATUSES = [(1, "Pending", "Ausstehend"), (2, "Processing", "In Bearbeitung"),
                  (3, "Shipped", "Versendet"), (5, "Complete", "Abgeschlossen"),
                  (7, "Canceled", "Storniert"), (11, "Refunded", "Erstattet")]

RULES = ["DUPLICATE_REFUND", "OVER_REFUND", "REFUND_WITHOUT_RECEIPT", "REFUND_FOR_DAMAGED_GOODS",
         "RECEIVED_NOT_REFUNDED", "QUANTITY_MISMATCH", "RMA_NOT_RECEIVED", "STATUS_MISMATCH",
         "ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH", "RESTOCK_MISMATCH", "ORPHAN_REFUND",
         "UNSYNCED_STOCK_ADJUSTMENT", "REFUND_CURRENCY_MISMATCH",
         "CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE", "PAYMENT_AMOUNT_MISMATCH"]

REFUND_METHOD = "magento.postsales.refund_management.updated"
RETURN_UPDATED_METHOD = "magento.postsales.return_management.updated"
RETURN_AUTHORIZE_METHOD = "magento.postsales.return_management.authorize"

SCHEMA = {
    "oc_order": "order_id INTEGER PRIMARY KEY, store_id INTEGER NOT NULL DEFAULT 0, customer_id INTEGER,"
                " email TEXT, total DECIMAL(15,4), order_status_id INTEGER, currency_code TEXT,"
                " currency_value DECIMAL(15,8), date_added TEXT, date_modified TEXT",
    "oc_order_product": "order_product_id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER,"
                        " name TEXT, model TEXT, quantity INTEGER, price DECIMAL(15,4),"
                        " total DECIMAL(15,4), tax DECIMAL(15,4)",
    "oc_order_status": "order_status_id INTEGER, language_id INTEGER, name TEXT,"
                       " PRIMARY KEY (order_status_id, language_id)",
    "oc_product": "product_id INTEGER PRIMARY KEY, model TEXT, quantity INTEGER, price DECIMAL(15,4),"
                  " subtract INTEGER, status INTEGER, date_modified TEXT",
    "oc_return": "return_id INTEGER PRIMARY KEY, order_id INTEGER, product_id INTEGER, customer_id INTEGER,"
                 " firstname TEXT, lastname TEXT, email TEXT, telephone TEXT, product TEXT, model TEXT,"
                 " quantity INTEGER, opened INTEGER, return_reason_id INTEGER, return_action_id INTEGER,"
                 " return_status_id INTEGER, comment TEXT, date_ordered TEXT, date_added TEXT,"
                 " date_modified TEXT",
    "oc_return_history": "return_history_id INTEGER PRIMARY KEY, return_id INTEGER,"
                         " return_status_id INTEGER, notify INTEGER, comment TEXT, date_added TEXT",
    "oc_return_status": "return_status_id INTEGER, language_id INTEGER, name TEXT,"
                        " PRIMARY KEY (return_status_id, language_id)",
    "oc_return_reason": "return_reason_id INTEGER, language_id INTEGER, name TEXT,"
                        " PRIMARY KEY (return_reason_id, language_id)",
    "oc_return_action": "return_action_id INTEGER, language_id INTEGER, name TEXT,"
                        " PRIMARY KEY (return_action_id, language_id)",
}
COLUMNS = {
    "oc_order": ["order_id", "store_id", "customer_id", "email", "total", "order_status_id", "currency_code",
                 "currency_value", "date_added", "date_modified"],
    "oc_order_product": ["order_product_id", "order_id", "product_id", "name", "model", "quantity", "price",
                         "total", "tax"],
    "oc_order_status": ["order_status_id", "language_id", "name"],
    "oc_product": ["product_id", "model", "quantity", "price", "subtract", "status", "date_modified"],
    "oc_return": ["return_id", "order_id", "product_id", "customer_id", "firstname", "lastname", "email",
                  "telephone", "product", "model", "quantity", "opened", "return_reason_id", "return_action_id",
                  "return_status_id", "comment", "date_ordered", "date_added", "date_modified"],
    "oc_return_history": ["return_history_id", "return_id", "return_status_id", "notify", "comment", "date_added"],
    "oc_return_status": ["return_status_id", "language_id", "name"],
    "oc_return_reason": ["return_reason_id", "language_id", "name"],
    "oc_return_action": ["return_action_id", "language_id", "name"],
}

FIRST_NAMES = ["Anna", "Ben", "Clara", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
               "Katja", "Luca", "Mira", "Noah", "Olga", "Paul", "Rosa", "Sami", "Tara", "Uwe"]
LAST_NAMES = ["Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova",
              "Jansen", "Kowalski", "Larsen", "Moreau", "Novak", "Oliveira", "Petrov", "Quinn",
              "Rossi", "Schmidt", "Tanaka", "Weber"]
ADJECTIVES = ["Merino", "Linen", "Canvas", "Organic", "Classic", "Trail", "Urban", "Alpine",
              "Vintage", "Coastal", "Studio", "Everyday", "Heritage", "Summit", "Harbor"]
NOUNS = ["Crew Sweater", "Oxford Shirt", "Chino Trousers", "Rain Jacket", "Wool Beanie",
         "Leather Belt", "Running Shoes", "Tote Bag", "Down Vest", "Denim Jeans", "Silk Scarf",
         "Hiking Socks", "Polo Shirt", "Backpack", "Sunglasses", "Water Bottle", "Travel Mug"]
REASON_CODES = [("TOO_BIG", "Too big size"), ("TOO_SMALL", "Too small size"),
                ("DAMAGED", "Arrived damaged"), ("NOT_AS_DESCRIBED", "Not as described"),
                ("CHANGED_MIND", "Changed mind")]
CARRIERS = ["UPS", "DHL", "GLS", "DPD"]
CUSTOMER_COMMENTS = ["", "Too small", "Colour differs from the photo", "Arrived with a scratch",
                     "Ordered two sizes, keeping one", "Changed my mind", ""]
WMS_NOTES = [None, None, None, "Box slightly dented", "Customer note inside parcel",
             "Label partly unreadable", "Original packaging"]
WMS_TAGS = [None, None, None, None, "wrong-size", "defective", "customer-change", "standard"]
USERS = ["finance.bot", "cs-agent-3", "cs-agent-7", "admin"]


# --------------------------------------------------------------------------- helpers

def money(x: Decimal) -> Decimal:
    """Half-up to cents."""
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def m2(x: Decimal) -> str:
    return str(money(x))


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def fmt_wms(us: int | None, digits: int = 6) -> str | None:
    """``2024-02-23T11:11:18.810942Z``; ``digits`` fractional digits (0: none, the value floored)."""
    if us is None:
        return None
    d = _dt(us)
    head = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
    if digits == 0:
        return head + "Z"
    return head + "." + f"{d.microsecond:06d}"[:digits] + "Z"


def wms_digits(ref: str) -> int:
    """Fractional digits of a WMS record's timestamps: real WMS exports carry 0 to 6; one record in
    six has none, one in six has milliseconds (deterministic by reference, no random draw)."""
    n = int(ref.rsplit("-", 1)[1]) % 6
    return 0 if n == 0 else 3 if n == 3 else 6


def fmt_oc(us: int) -> str:
    """``2024-02-23 11:11:18``"""
    d = _dt(us)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d} {d.hour:02d}:{d.minute:02d}:{d.second:02d}"


def fmt_iso(us: int) -> str:
    """``2024-02-23T11:11:18+00:00`` (OMS message dates)."""
    d = _dt(us)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}+00:00"


def fmt_day(us: int) -> str:
    d = _dt(us)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def sec(us: int) -> int:
    """Floor to the whole second (OpenCart and OMS dates carry no fraction)."""
    return us - us % US


def _d4(x: Decimal) -> str:
    return str(x.quantize(Q4))


# --------------------------------------------------------------------------- records

class Product:
    __slots__ = ("product_id", "sku", "name", "price", "tax", "vat", "quantity", "dedicated", "gap",
                 "modified")

    def __init__(self, product_id, sku, name, price, tax, vat, quantity, dedicated, modified):
        self.product_id, self.sku, self.name = product_id, sku, name
        self.price, self.tax, self.vat = price, tax, vat
        self.quantity, self.dedicated, self.gap, self.modified = quantity, dedicated, 0, modified


class Line:
    __slots__ = ("order_product_id", "order_id", "product", "quantity", "price", "tax")

    def __init__(self, order_product_id, order_id, product, quantity, gross_delta: Decimal | None = None):
        self.order_product_id, self.order_id = order_product_id, order_id
        self.product, self.quantity = product, quantity
        self.price, self.tax = product.price, product.tax
        if gross_delta:  # an option with a price modifier (size M +2.00): same SKU, other price
            gross = product.price + product.tax + gross_delta
            self.price = (gross * 100 / (100 + product.vat)).quantize(Q4, rounding=ROUND_HALF_UP)
            self.tax = gross - self.price

    @property
    def sku(self) -> str:
        return self.product.sku


class Order:
    __slots__ = ("order_id", "currency", "cv", "created", "lines", "customer_id", "first", "last",
                 "email", "phone")

    def __init__(self, order_id, currency, created, customer_id, first, last, email, phone):
        self.order_id, self.currency, self.cv = order_id, currency, CURRENCIES[currency]
        self.created, self.lines = created, []
        self.customer_id, self.first, self.last, self.email, self.phone = customer_id, first, last, email, phone

    @property
    def ref(self) -> str:
        return str(self.order_id)

    def ug(self, line: Line) -> Decimal:
        """Unit gross in the order currency, full precision."""
        return (line.price + line.tax) * self.cv

    def blended_ug(self, lines: list[Line]) -> Decimal:
        """Unit gross of an order line made of several rows of one SKU (option variants): total gross
        / total quantity, half-up to 8 places (reconciliation.md, "As of T, precisely")."""
        total = sum(((ln.price + ln.tax) * self.cv * ln.quantity for ln in lines), Decimal(0))
        return (total / sum(ln.quantity for ln in lines)).quantize(Decimal("1E-8"), rounding=ROUND_HALF_UP)


class Rma:
    __slots__ = ("return_id", "ref", "order", "line", "qty", "created", "rows", "action", "reason",
                 "opened", "comment", "product_id", "model")

    def __init__(self, return_id, order, line, qty, created, action, reason, opened, comment):
        self.return_id, self.ref = return_id, f"RMA-{return_id}"
        self.order, self.line, self.qty = order, line, qty
        self.created, self.action, self.reason = sec(created), action, reason
        self.opened, self.comment = opened, comment
        self.rows: list[list] = [[self.created, PENDING, "", 0]]
        self.product_id = self.model = None  # overrides: a model typed on the return form (product_id 0)

    def to(self, t: int, status: int, comment: str = "", notify: int = 1) -> int:
        t = max(sec(t), self.rows[-1][0] + US)  # strictly increasing history dates
        self.rows.append([t, status, comment, notify])
        return t

    def note(self, t: int, comment: str) -> int:
        return self.to(t, self.rows[-1][1], comment, 0)

    @property
    def sku(self) -> str:
        return self.line.sku


class Wms:
    __slots__ = ("ref", "order_ref", "created", "arrived", "completed", "tracking", "carrier", "items",
                 "source", "channel", "notes", "tag", "courier")

    def __init__(self, ref, order_ref, created, tracking, carrier):
        self.ref, self.order_ref, self.created = ref, order_ref, created
        self.arrived = self.completed = None
        self.tracking, self.carrier = tracking, carrier
        self.items: list[list] = []  # [sku, state, processedAt, damagedState, serial]
        self.source = "WMS"
        self.channel = "OpenCart"
        self.notes = None
        self.tag = None
        self.courier = "No"

    def add(self, sku: str, state: str, processed: int | None, damaged_state: str | None = None,
            serial: str | None = None) -> None:
        self.items.append([sku, state, processed, damaged_state, serial])

    def count(self, state: str) -> int:
        return sum(1 for it in self.items if it[1] == state)


class Flow:
    """What ``World.flow`` built: handles for ground truth."""
    __slots__ = ("order", "line", "rma", "wms", "ug", "tracking", "refunds")

    def __init__(self, order, line, rma, wms, ug, tracking, refunds):
        self.order, self.line, self.rma, self.wms, self.ug = order, line, rma, wms, ug
        self.tracking, self.refunds = tracking, refunds


# --------------------------------------------------------------------------- the world

class World:
    def __init__(self, out_dir: Path, seed: int, n_returns: int, end_date: date,
                 progress: Callable[[str], None] | None):
        self.out = Path(out_dir)
        self.seed, self.n_returns, self.end_date = seed, n_returns, end_date
        self.progress = progress
        self.rng = random.Random(seed)
        t_day = end_date + timedelta(days=1)
        self.T = int((datetime(t_day.year, t_day.month, t_day.day) - _EPOCH).total_seconds()) * US
        self.now = self.T + 6 * HOUR
        # id allocators
        self._ids = {"order": 0, "order_product": 0, "product": 0, "return": 0, "history": 0,
                     "unannounced": 14000, "cn": 0, "adj": 0, "tracking": 0, "customer": 1000,
                     "orphan_item": 900000000, "unknown_order": 700000000}
        self.products: list[Product] = []
        self.pool: list[Product] = []  # background products
        # the answer key is streamed to part files (one entry per line), assembled at the end
        self.n_cases = self.n_lookalikes = 0
        self.by_rule = {rule: 0 for rule in RULES}
        self._recent_case_ids: list[str] = []
        self.expected_rejects: list[dict] = []
        self.expected_payment_rejects: list[dict] = []
        self.probe_case: dict | None = None
        self.counts: dict[str, int] = {}
        self.rma_total = 0
        self._last_refund_line: str | None = None
        self._live_orders: set[int] = set()  # orders the storefront knows (not abandoned checkouts)
        self.scenario_orders: set[int] = set()  # orders built by cases/look-alikes (for self-checks)
        self.scenario_returns: set[str] = set()
        self._scenario_active = False
        # credit notes as of now (latest status date wins) and what the payment provider does about
        # them (pipelines/demo/world_payments.py): a plan per note, set by the payment scenarios
        self.notes: dict[str, dict] = {}
        self.payment_plans: dict[str, list[dict]] = {}
        self.payment_plan_ids: dict[str, list[str | None]] = {}  # the provider refunds a plan sent
        self.payment_objects: list = []
        self.pay_rng = random.Random(seed * 1_000_003 + 17)  # apart from rng: the shop stays as it was
        self._open_writers()

    # ------------------------------------------------------------ writers
    def _open_writers(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "wms").mkdir(exist_ok=True)
        ledger = self.out / "ledger"
        ledger.mkdir(exist_ok=True)
        for old in sorted(ledger.glob("*.jsonl")):
            old.unlink()
        db = self.out / "storefront.sqlite"
        for p in (db, Path(str(db) + "-journal"), Path(str(db) + "-wal")):
            if p.exists():
                p.unlink()
        self.db = sqlite3.connect(str(db))
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        for table, ddl in SCHEMA.items():
            self.db.execute(f"CREATE TABLE {table} ({ddl})")
        self._buf: dict[str, list] = {t: [] for t in SCHEMA}
        self._sql = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
                     for t, c in COLUMNS.items()}
        for t in SCHEMA:
            self.counts[t] = 0
        self.f_returns = open(self.out / "wms" / "returns.jsonl", "w", encoding="utf-8", newline="\n")
        self.f_adj = open(self.out / "wms" / "stock_adjustments.jsonl", "w", encoding="utf-8", newline="\n")
        self.f_gt_cases = open(self.out / ".ground_truth.cases.part", "w", encoding="utf-8", newline="\n")
        self.f_gt_lookalikes = open(self.out / ".ground_truth.lookalikes.part", "w", encoding="utf-8",
                                    newline="\n")
        self._ledger: dict[str, list] = {}  # day -> [file, lines written]
        for k in ("wms_returns", "wms_line_items", "stock_adjustments", "stock_adjustment_lines", "stocks",
                  "ledger_messages", "refund_messages", "distinct_credit_notes", "refund_lines",
                  "other_messages"):
            self.counts[k] = 0

    def _row(self, table: str, row: tuple) -> None:
        buf = self._buf[table]
        buf.append(row)
        self.counts[table] += 1
        if len(buf) >= BATCH:
            self.db.executemany(self._sql[table], buf)
            buf.clear()

    def _flush_db(self) -> None:
        for t, buf in self._buf.items():
            if buf:
                self.db.executemany(self._sql[t], buf)
                buf.clear()

    def _ledger_write(self, t: int, text: str) -> tuple[str, int]:
        day = fmt_day(t)
        entry = self._ledger.get(day)
        if entry is None:
            f = open(self.out / "ledger" / f"oms-messages-{day}.jsonl", "w", encoding="utf-8", newline="\n")
            entry = self._ledger[day] = [f, 0]
        entry[0].write(text + "\n")
        entry[1] += 1
        self.counts["ledger_messages"] += 1
        return f"ledger/oms-messages-{day}.jsonl", entry[1]

    # ------------------------------------------------------------ small random helpers
    def u(self, lo: float, hi: float) -> int:
        """Uniform duration in microseconds between lo and hi (given in microseconds)."""
        return int(self.rng.uniform(lo, hi))

    def at(self, days: float, jitter_hours: float = 2.0) -> int:
        """T + days (negative = before T), +- jitter."""
        j = self.rng.uniform(-jitter_hours, jitter_hours) * HOUR if jitter_hours else 0
        return self.T + int(days * DAY + j)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def tracking_number(self) -> tuple[str, str]:
        n = self.next_id("tracking")
        r = self.rng
        carrier = r.choice(CARRIERS)
        if carrier == "UPS":
            num = "1Z" + "".join(r.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(4)) + f"{n:08d}"
        elif carrier == "DHL":
            num = f"JJD{n:010d}{r.randint(10, 99)}"
        elif carrier == "GLS":
            num = f"{r.randint(100, 999)}{n:09d}"
        else:
            num = f"0{n:09d}{r.randint(1000, 9999)}"
        return num, carrier

    def tracking_comment(self, num: str, corrected: bool = False) -> str:
        if corrected:
            return self.rng.choice([f"Correction - tracking number: {num}",
                                    f"Customer sent the right label, tracking no: {num}",
                                    f"Updated Tracking ID: {num}"])
        return self.rng.choice([f"Tracking number: {num}", f"tracking no: {num}", f"Tracking#{num}",
                                f"Parcel handed to carrier. Tracking: {num}", f"TRACKING ID: {num}",
                                f"customer sent tracking # {num}"])

    # ------------------------------------------------------------ products and orders
    def product(self, dedicated: bool = False, check: Callable[[Product], bool] | None = None) -> Product:
        """A product whose gross price (price + tax) is a whole number of cents ending in 9.

        That keeps every amount the rules compute away from half-cent rounding ties in all three
        currencies (EUR 1.0, USD 1.085, GBP 0.8612), so float and Decimal pipelines agree."""
        r = self.rng
        while True:
            gross = Decimal(r.choice([4, 7, 9, 12, 14, 19, 24, 29, 34, 39, 49, 59, 69, 79, 89, 99, 119, 149])
                            * 100 + r.choice([-1, -11, -21, -51, -41])) / 100
            vat = Decimal(r.choice([19, 19, 19, 7, 20, 10]))
            price = (gross * 100 / (100 + vat)).quantize(Q4, rounding=ROUND_HALF_UP)
            tax = gross - price
            pid = self._ids["product"] + 1
            p = Product(pid, f"SKU-{pid:05d}", f"{r.choice(ADJECTIVES)} {r.choice(NOUNS)}", price, tax, vat,
                        r.randint(5, 400), dedicated, self.T - self.u(1 * DAY, 120 * DAY))
            if check is None or check(p):
                break
        self.next_id("product")
        self.products.append(p)
        if not dedicated:
            self.pool.append(p)
        return p

    def pick_products(self, n: int, exclude: tuple = ()) -> list[Product]:
        out: list[Product] = []
        while len(out) < n:
            p = self.rng.choice(self.pool)
            if p not in out and p not in exclude:
                out.append(p)
        return out

    def order(self, t: int, items: list[tuple], currency: str | None = None, status: int = 5) -> Order:
        """Write an order with one line per (product, quantity[, gross delta]); products are distinct
        unless a gross delta makes a row an option variant of another. ``status`` 0 is an abandoned
        checkout (OpenCart's "missing order")."""
        r = self.rng
        t = sec(t)
        if currency is None:
            currency = r.choices(["EUR", "USD", "GBP"], weights=[6, 2, 2])[0]
        cid = self.next_id("customer")
        first, last = r.choice(FIRST_NAMES), r.choice(LAST_NAMES)
        email = f"{first}.{last}{cid}@example.{r.choice(['com', 'net', 'org'])}".lower()
        phone = f"+49 15{r.randint(10, 99)} {r.randint(1000000, 9999999)}"
        o = Order(self.next_id("order"), currency, t, cid, first, last, email, phone)
        total = Decimal("4.99")  # shipping
        for item in items:
            p, q = item[0], item[1]
            ln = Line(self.next_id("order_product"), o.order_id, p, q, item[2] if len(item) > 2 else None)
            o.lines.append(ln)
            total += (ln.price + ln.tax) * q
            self._row("oc_order_product", (ln.order_product_id, o.order_id, p.product_id, p.name, p.sku, q,
                                           _d4(ln.price), _d4(ln.price * q), _d4(ln.tax)))
        modified = min(t + self.u(1 * DAY, 4 * DAY), self.now)
        self._row("oc_order", (o.order_id, 0, cid, email, _d4(total), status, currency, str(o.cv), fmt_oc(t),
                               fmt_oc(modified)))
        if self._scenario_active:
            self.scenario_orders.add(o.order_id)
        if status != 0:
            self._live_orders.add(o.order_id)
        return o

    def random_items(self, must: list[tuple[Product, int]] | None = None, extra: int | None = None,
                     exclude: tuple = ()) -> list[tuple[Product, int]]:
        r = self.rng
        items = list(must or [])
        if extra is None:
            extra = r.choices([0, 1, 2], weights=[5, 3, 1])[0]
        if not items:
            extra += 1  # an order has at least one line
        taken = tuple(it[0] for it in items) + tuple(exclude)
        for p in self.pick_products(extra, exclude=taken):
            items.append((p, r.choices([1, 2, 3], weights=[7, 2, 1])[0]))
        r.shuffle(items)
        return items

    def case_order(self, created: int, qty: int = 1, currency: str | None = None,
                   product: Product | None = None, exclude: tuple = ()) -> tuple[Order, Line]:
        """A fresh order placed 2-20 days before ``created``; returns (order, the line of ``product``)."""
        p = product or self.pick_products(1, exclude=exclude)[0]
        items = self.random_items([(p, qty)], exclude=exclude)
        o = self.order(created - self.u(2 * DAY, 20 * DAY), items, currency)
        return o, next(ln for ln in o.lines if ln.product is p)

    # ------------------------------------------------------------ RMAs
    def new_rma(self, order: Order, line: Line, qty: int, created: int, action: int = A_REFUNDED) -> Rma:
        r = self.rng
        rma = Rma(self.next_id("return"), order, line, qty, created, action, r.randint(1, 5),
                  r.choice([0, 1]), r.choice(CUSTOMER_COMMENTS))
        self.rma_total += 1
        return rma

    def commit_rma(self, rma: Rma) -> None:
        rows = [row for row in rma.rows if row[0] <= self.now]
        assert rows, "an RMA must be created before now"
        for t, status, comment, notify in rows:
            self._row("oc_return_history", (self.next_id("history"), rma.return_id, status, notify, comment,
                                            fmt_oc(t)))
        o, ln = rma.order, rma.line
        pid = ln.product.product_id if rma.product_id is None else rma.product_id
        model = ln.sku if rma.model is None else rma.model
        self._row("oc_return", (rma.return_id, o.order_id, pid, o.customer_id, o.first, o.last,
                                o.email, o.phone, ln.product.name, model, rma.qty, rma.opened, rma.reason,
                                rma.action, rows[-1][1], rma.comment, fmt_day(o.created), fmt_oc(rows[0][0]),
                                fmt_oc(rows[-1][0])))

    # ------------------------------------------------------------ WMS
    def new_wms(self, order_ref: str, created: int, ref: str | None = None, tracking: str | None = None,
                carrier: str | None = None) -> Wms:
        r = self.rng
        if ref is None:
            ref = f"Return-{self.next_id('unannounced')}"
        w = Wms(ref, order_ref, created, tracking, carrier if tracking else None)
        w.source = r.choice(["WMS", "WMS", "Oplog"])
        w.channel = r.choice(["OpenCart", "OpenCart", None])
        w.notes = r.choice(WMS_NOTES)
        w.tag = r.choice(WMS_TAGS)
        w.courier = r.choice(["No", "No", "Success", "Requested"]) if tracking else "No"
        if self._scenario_active:
            self.scenario_returns.add(ref)
        return w

    def grade(self, w: Wms, sku: str, grades: str, arrive: int, complete: int | None,
              processed: list[int] | None = None) -> None:
        """One line item per unit; grades: U(ndamaged) D(amaged) M(issing) W(aiting, never processed)."""
        r = self.rng
        for k, g in enumerate(grades):
            if g == "W":
                w.add(sku, "WaitingToBeProcessed", None)
                continue
            if processed is not None:
                pa = processed[k] if k < len(processed) else processed[-1]
            elif complete is not None:
                pa = arrive + self.u(0.1 * (complete - arrive), 0.9 * (complete - arrive))
            else:
                pa = arrive + self.u(30 * MIN, 18 * HOUR)
            state = {"U": "Undamaged", "D": "Damaged", "M": "Missing"}[g]
            ds = r.choice(["WaitingInWarehouse", "WaitingInWarehouse", "SendToCustomer"]) if g == "D" else None
            serial = f"SN{r.randint(10**9, 10**10 - 1)}" if r.random() < 0.15 else None
            w.add(sku, state, pa, ds, serial)

    def commit_wms(self, w: Wms) -> None:
        now = self.now
        if w.created > now:
            return
        arrived = w.arrived if (w.arrived is not None and w.arrived <= now) else None
        completed = w.completed if (arrived is not None and w.completed is not None and w.completed <= now) else None
        state = ("Completed" if completed is not None
                 else "ArrivedToWarehouse" if arrived is not None else "ReturnCreated")
        updated = max(x for x in (w.created, arrived, completed) if x is not None)
        nd = wms_digits(w.ref)
        fw = lambda us: fmt_wms(us, nd)  # noqa: E731 - this record's precision
        items = []
        for n, (sku, st, pa, ds, serial) in enumerate(w.items, 1):
            if pa is not None and arrived is not None and pa <= now:
                assert arrived <= pa and (completed is None or pa <= completed), w.ref
                updated = max(updated, pa)
                items.append({"lineItemReferenceNumber": f"{w.ref}-{n}", "sku": sku, "processedAt": fw(pa),
                              "state": st, "damagedState": ds, "serialNumber": serial})
            else:
                assert completed is None, w.ref
                items.append({"lineItemReferenceNumber": f"{w.ref}-{n}", "sku": sku, "processedAt": None,
                              "state": "WaitingToBeProcessed", "damagedState": None, "serialNumber": serial})
        rec = {"source": w.source, "returnReferenceNumber": w.ref, "salesOrderChannel": w.channel,
               "salesOrderReferenceNumber": w.order_ref, "notes": w.notes, "state": state,
               "trackingId": w.tracking, "cargoCarrier": w.carrier, "createdAt": fw(w.created),
               "updatedAt": fw(updated), "arrivedToWarehouseAt": fw(arrived),
               "completedAt": fw(completed), "courierRequest": w.courier, "tag": w.tag,
               "lineItems": items}
        self.f_returns.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.counts["wms_returns"] += 1
        self.counts["wms_line_items"] += len(items)

    def adjust(self, t: int, tag: str | None, lines: list[tuple[Product, int, int, int, int]],
               ttype: str = "ReturnRestock") -> None:
        """lines: (product, found, lost, putInQuarantine, releaseFromQuarantine)."""
        if t > self.now or not lines:
            return
        n = self.next_id("adj")
        rec = {"id": self.uid(), "transactionNumber": f"SA-{n:08d}", "transactionType": ttype,
               "completedAt": fmt_wms(t), "tag": tag,
               "lineItems": [{"id": self.uid(), "productName": p.name, "sku": p.sku, "lostAmount": lost,
                              "foundAmount": found, "putInQuarantineAmount": pq,
                              "releaseFromQuarantineAmount": rq} for p, found, lost, pq, rq in lines]}
        self.f_adj.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.counts["stock_adjustments"] += 1
        self.counts["stock_adjustment_lines"] += len(lines)

    def restock_for(self, w: Wms, product: Product, t: int, quarantine: bool = False) -> None:
        """The correct restock of a return: undamaged units found; damaged ones either absent or
        found + put in quarantine (net 0)."""
        nu, nd = w.count("Undamaged"), w.count("Damaged")
        found, pq = nu + (nd if quarantine else 0), (nd if quarantine else 0)
        if found or pq:
            self.adjust(t, w.ref, [(product, found, 0, pq, 0)])

    # ------------------------------------------------------------ ledger
    def refund_line(self, order: Order, item: Line | str, units: int | None = None,
                    amount: Decimal | None = None, vat: Decimal | None = None, pay_status: str = "REFUNDED",
                    raw_gross: str | None = None) -> dict:
        if isinstance(item, Line):
            item_id, vat = str(item.order_product_id), item.product.vat
            if amount is None:
                amount = money(units * order.ug(item))
        else:
            item_id = item
            vat = Decimal(19) if vat is None else vat
        amount = money(amount)
        net = money(amount * 100 / (100 + vat))
        r = self.rng
        code, desc = r.choice(REASON_CODES)
        return {"order_line": None, "order_item_id": item_id, "reason": code, "reason_description": desc,
                "payments": [{"details": {"cost_gross": raw_gross or str(amount), "cost_net": str(net),
                                          "cost_vat": str(amount - net), "vat_rate": f"{vat:.2f}",
                                          "vat_detail": [{"type": "VAT", "amount": str(amount - net),
                                                          "rate": f"{vat:.2f}"}]},
                              "status": {"code": pay_status, "name": pay_status}}]}

    def refund(self, order: Order | str, t: int, lines: list[dict], *, rma: str | None = None,
               refund_type: str = "Return", status: str = "RELEASED", currency: str | None = "order",
               redeliver: int = 0, rejected: bool = False, cn: str | None = None, status_at: int | None = None,
               file_at: int | None = None) -> str | None:
        """Publish one credit note (a refund message). Returns its number, or None when after now.

        ``t`` is the credit note's date; ``status_at`` the date of this message's status (default
        ``t``); ``cn`` re-publishes an existing note in another version (a new status); ``file_at``
        the day file it lands in (default the status date: a redelivery may land in a later file)."""
        t = sec(t)
        status_at = t if status_at is None else sec(status_at)
        if t > self.now or status_at > self.now:
            return None
        r = self.rng
        new_note = cn is None
        if new_note:
            cn = f"CN-{self.next_id('cn'):06d}"
        order_id = order.ref if isinstance(order, Order) else order
        if currency == "order":
            currency = None if r.random() < 0.15 else (order.currency if isinstance(order, Order) else "EUR")
        for k, ln in enumerate(lines, 1):
            ln["order_line"] = str(k)
        reason = {"Return": "RETURN_RECEIVED", "Appeasement": "GOODWILL", "Cancellation": "ORDER_CANCELLED"}.get(
            refund_type, "OTHER")
        st = {"code": status, "name": status,
              "reason_code": "RELEASESUCCESS" if status == "RELEASED" else "AWAITINGAPPROVAL",
              "reason_name": "RELEASESUCCESS" if status == "RELEASED" else "AWAITINGAPPROVAL",
              "date": fmt_iso(status_at)}
        body = {"order_id": order_id, "store_id": "0", "sales_channel_id": "ST1", "credit_note_number": cn,
                "credit_note_date": fmt_iso(t), "rma": rma, "refund_type": refund_type, "refund_reason": reason,
                "user": r.choice(USERS), "status": st, "currency": currency, "lines": lines,
                "custom_attributes": []}
        msg = {"jsonrpc": "2.0", "id": f"msg-{self.uid()}", "method": REFUND_METHOD, "params": {"refund": body}}
        text = json.dumps(msg, separators=(",", ":"))
        where = self._ledger_write(status_at if file_at is None else file_at, text)
        self.counts["refund_messages"] += 1
        if rejected:
            self.expected_rejects.append({"file": where[0], "line": where[1], "reason": "non-numeric amount",
                                          "credit_note_number": cn})
        elif new_note:
            self.counts["distinct_credit_notes"] += 1
            self.counts["refund_lines"] += len({ln["order_item_id"] for ln in lines})
        for k in range(redeliver):
            # at-least-once delivery: the exact same message again, same file, then the next day's
            t2 = t + DAY if k >= 1 and t + DAY <= self.now else t
            self._ledger_write(t2, text)
            self.counts["refund_messages"] += 1
        self._last_refund_line = text
        self._track_note(cn, order, order_id, currency, status, status_at, lines, rejected)
        return cn

    def _track_note(self, cn: str, order, order_id: str, currency: str | None, status: str, status_at: int,
                    lines: list[dict], rejected: bool) -> None:
        """The note's state as the ledger resolves it: the version with the latest status date."""
        old = self.notes.get(cn)
        if old is not None and (rejected or (not old["rejected"] and status_at <= old["status_at"])):
            return  # a bad line never replaces a note; of equal dates the first delivered wins
        amount = Decimal(0)
        if status == "RELEASED" and not rejected:
            for ln in lines:
                for pay in ln["payments"]:
                    if pay["status"]["code"] == "REFUNDED":
                        amount += Decimal(pay["details"]["cost_gross"])
        known = isinstance(order, Order) and order.order_id in self._live_orders
        effective = currency or (order.currency if known else None)
        self.notes[cn] = {"cn": cn, "order_id": order_id, "currency": effective, "explicit_currency": currency,
                          "order_known": known, "status": status, "status_at": status_at, "amount": amount,
                          "rejected": rejected, "scenario": self._scenario_active}

    def other_message(self, t: int, method: str, rma: Rma, status: str | None = None) -> None:
        t = sec(t)
        if t > self.now:
            return
        body = {"sales_channel_id": "ST1", "order_id": rma.order.ref, "source_id": "SOU1", "user": "userB",
                "rma": rma.ref,
                "lines": [{"id": str(rma.line.order_product_id), "line_number": 1, "sku": rma.sku,
                           "qty": rma.qty, "reason": "TOO_BIG", "reason_description": "Too big size"}]}
        if status:
            body["status"] = {"code": status, "name": status, "reason_code": "CSRREQUEST", "date": fmt_iso(t)}
        msg = {"jsonrpc": "2.0", "id": f"msg-{self.uid()}", "method": method, "params": {"return": body}}
        self._ledger_write(t, json.dumps(msg, separators=(",", ":")))
        self.counts["other_messages"] += 1

    # ------------------------------------------------------------ one lifecycle
    def flow(self, order: Order, line: Line, qty: int, *, created: int, auth: int | None = None,
             mode: str | None = "preauth", tracking: str | None = "auth", tracking_at: int | None = None,
             correct_at: int | None = None, wms_order_ref: str | None = None, wms_created: int | None = None,
             arrive: int | None = None, complete: int | None = None, grades: str | None = None,
             processed: list[int] | None = None, restock: str | list | None = "auto",
             restock_at: int | None = None, quarantine: bool = False, refund: str | int | None = "auto",
             refund_at: int | None = None, refund_amount: Decimal | None = None, shipping: bool = False,
             redeliver: int = 0, close: int | None = None, close_status: int = COMPLETE,
             action: int = A_REFUNDED, messages: bool = False, refund_currency: str | None = "order",
             trk: tuple[str, str] | None = None, trk_comment: str | None = None,
             rma_product_id: int | None = None, rma_model: str | None = None) -> Flow:
        """One RMA lifecycle. Times are absolute microseconds; ``None`` means "does not happen".

        mode: ``preauth`` (WMS return ``RMA-<id>`` created at authorisation), ``tracking``
        (unannounced, created at arrival, carrying the RMA's tracking number), ``ordersku``
        (unannounced, no tracking id), ``None`` (no WMS return). tracking: ``auth`` (pasted in
        the authorisation comment), ``later`` (own comment at ``tracking_at``), ``None``.
        restock: ``auto`` (the correct adjustment), ``None`` or explicit adjustment lines.
        refund: ``auto`` (undamaged units once completed, when the action is Refunded or Waiting for
        return), ``None``/0, or a unit count. refund_currency: the credit note's ``currency``
        (``order``: the order's, sometimes absent). trk / trk_comment: a given (tracking number,
        carrier) and comment format (``{}`` = the number). rma_product_id / rma_model: what the
        customer typed on the return form.
        """
        r = self.rng
        rma = self.new_rma(order, line, qty, created, action)
        rma.product_id, rma.model = rma_product_id, rma_model
        given, trk, carrier = trk, None, None
        if tracking:
            trk, carrier = given or self.tracking_number()

        def tcomment(num: str) -> str:
            return trk_comment.format(num) if trk_comment else self.tracking_comment(num)
        if auth is not None:
            comment = r.choice(["Return authorised, prepaid label sent.", "Approved.",
                                "Return approved - please ship within 14 days."])
            if tracking == "auth":
                comment += " " + tcomment(trk)
            auth = rma.to(auth, AWAITING, comment)
            if messages:
                self.other_message(auth + self.u(1 * MIN, 30 * MIN), RETURN_AUTHORIZE_METHOD, rma)
        if tracking == "later":
            rma.note(tracking_at, tcomment(trk))
        if correct_at is not None:
            trk, carrier = self.tracking_number()
            rma.note(correct_at, self.tracking_comment(trk, corrected=True))
        grades = grades or "U" * qty
        w = None
        if mode == "preauth" and auth is not None:
            created_w = wms_created if wms_created is not None else auth + self.u(1 * MIN, 90 * MIN)
            w = self.new_wms(order.ref, created_w, ref=rma.ref, tracking=trk if r.random() < 0.8 else None,
                             carrier=carrier)
            w.arrived = arrive
        elif mode in ("tracking", "ordersku") and arrive is not None:
            w = self.new_wms(wms_order_ref or order.ref, arrive, tracking=trk if mode == "tracking" else None,
                             carrier=carrier)
            w.arrived = arrive + self.u(10 * US, 20 * MIN)
        if w is not None:
            w.completed = complete
            if w.arrived is not None:
                self.grade(w, line.sku, grades, w.arrived, complete, processed)
            else:
                for _ in grades:
                    w.add(line.sku, "WaitingToBeProcessed", None)
            self.commit_wms(w)
            if complete is not None:
                if restock == "auto":
                    self.restock_for(w, line.product, restock_at or complete + self.u(15 * MIN, 6 * HOUR),
                                     quarantine)
                elif restock:
                    self.adjust(restock_at or complete + self.u(15 * MIN, 6 * HOUR), w.ref, restock)
        ug = order.ug(line)
        cns = []
        if refund == "auto":
            units = grades.count("U") if (action in (A_REFUNDED, A_WAITING) and complete is not None) else 0
        else:
            units = refund or 0
        if units or refund_amount is not None:
            if refund_at is None:
                refund_at = complete + self.u(1 * HOUR, 44 * HOUR)
            lines = [self.refund_line(order, line, units, amount=refund_amount)]
            if shipping:
                lines.append(self.refund_line(order, "SHIPPING", amount=money(Decimal("4.99") * order.cv)))
            cns.append(self.refund(order, refund_at, lines, rma=rma.ref, redeliver=redeliver,
                                   currency=refund_currency))
        if close is not None:
            cmt = {COMPLETE: r.choice(["Refund issued.", "Return closed.", "Processed."]),
                   REJECTED: "Outside the return window.", CANCELLED: "Customer withdrew the return.",
                   CANCELED_US: "Canceled at the customer's request.",
                   ON_HOLD: "On hold: waiting for the customer's bank details."}[close_status]
            close = rma.to(close, close_status, cmt)
            if messages:
                self.other_message(close + self.u(1 * MIN, 30 * MIN), RETURN_UPDATED_METHOD, rma, "APPROVED")
        self.commit_rma(rma)
        return Flow(order, line, rma, w, ug, trk, cns)

    def parcel(self, order_ref: str, sku: str, product: Product, grades: str, arrive: int, complete: int | None,
               tracking: bool = True, restock: bool = True) -> Wms:
        """An unannounced WMS return no RMA asked for (orphan material)."""
        trk, carrier = self.tracking_number() if tracking else (None, None)
        w = self.new_wms(order_ref, arrive, tracking=trk, carrier=carrier)
        w.arrived = arrive + self.u(10 * US, 20 * MIN)
        w.completed = complete
        self.grade(w, sku, grades, w.arrived, complete)
        self.commit_wms(w)
        if restock and complete is not None:
            self.restock_for(w, product, complete + self.u(15 * MIN, 6 * HOUR))
        return w

    # ------------------------------------------------------------ answer key
    def expect(self, sid: str, rule: str, keys: dict, amount: Decimal | int, quantity_gap: int | None = None,
               note: str = "") -> None:
        assert rule in RULES
        case_id = f"{sid}:{rule}"
        same = sum(1 for c in self._recent_case_ids if c.startswith(case_id))
        if same:  # the same rule twice in one scenario (another grain): number it
            case_id += f":{same + 1}"
        self._recent_case_ids = self._recent_case_ids[-3:] + [case_id]
        entry = {"case_id": case_id, "rule": rule, "keys": keys, "amount_at_risk": m2(Decimal(amount)),
                 "quantity_gap": quantity_gap, "note": note}
        self.f_gt_cases.write((",\n" if self.n_cases else "") + json.dumps(entry))
        self.n_cases += 1
        self.by_rule[rule] += 1

    def lookalike(self, sid: str, kind: str, description: str, must_not_fire: list[str], keys: dict) -> None:
        assert all(x in RULES for x in must_not_fire)
        entry = {"lookalike_id": sid, "kind": kind, "description": description, "must_not_fire": must_not_fire,
                 "keys": keys}
        self.f_gt_lookalikes.write((",\n" if self.n_lookalikes else "") + json.dumps(entry))
        self.n_lookalikes += 1

    @staticmethod
    def ol_keys(f: Flow | tuple) -> dict:
        o, ln = (f.order, f.line) if isinstance(f, Flow) else f
        return {"order_reference": o.ref, "order_line_reference": World.line_ids(o, ln), "sku": ln.sku}

    @staticmethod
    def line_ids(o: Order, ln: Line) -> str:
        """The order line of the rules is (order, SKU): its rows' ids, comma-separated, numeric order."""
        return ",".join(str(x.order_product_id) for x in sorted(
            (x for x in o.lines if x.sku == ln.sku), key=lambda x: x.order_product_id))

    @staticmethod
    def rma_keys(f: Flow, kind: str | None = None) -> dict:
        k = {"rma_reference": f.rma.ref, "order_reference": f.order.ref, "sku": f.line.sku}
        if kind:
            k["kind"] = kind
        return k

    @staticmethod
    def look_keys(f: Flow) -> dict:
        k = {"order_reference": f.order.ref, "order_line_reference": World.line_ids(f.order, f.line),
             "sku": f.line.sku, "rma_reference": f.rma.ref}
        if f.wms is not None:
            k["return_reference"] = f.wms.ref
        return k

    # ------------------------------------------------------------ background
    def background_group(self, budget: int) -> None:
        """One clean order story (at most ``budget`` RMAs). Fires nothing, at T or before."""
        r = self.rng
        T = self.T
        if r.random() < 0.25:
            self.plain_order()
        if r.random() < 0.03:  # stock work unrelated to returns (tag null)
            p = r.choice(self.pool)
            delta = r.choice([-2, -1, 1, 2])
            self.adjust(T - self.u(1 * HOUR, 60 * DAY), None, [(p, max(delta, 0), max(-delta, 0), 0, 0)],
                        ttype="CycleCount")
        created = T - self.u(2 * MIN, 60 * DAY - HOUR)
        kind = r.random()
        if budget >= 2 and kind < 0.07:
            self.bg_shared_parcel(created)
        elif budget >= 2 and kind < 0.16:
            self.bg_two_rmas(created)
        else:
            items = self.random_items()
            o = self.order(created - self.u(1 * DAY, 25 * DAY), items)
            self.bg_rma(o, r.choice(o.lines), created)

    def plain_order(self) -> None:
        """An order nobody returns; sometimes a cancelled line refunded (Cancellation, not judged)."""
        r = self.rng
        o = self.order(self.T - self.u(1 * HOUR, 90 * DAY), self.random_items())
        if r.random() < 0.12:
            ln = r.choice(o.lines)
            self.refund(o, o.created + self.u(1 * HOUR, 2 * DAY), [self.refund_line(o, ln, ln.quantity)],
                        refund_type="Cancellation")

    def bg_rma(self, o: Order, ln: Line, created: int) -> Flow:
        r = self.rng
        qty = ln.quantity if r.random() < 0.7 else r.randint(1, ln.quantity)
        x = r.random()
        if x < 0.04:  # rejected
            return self.flow(o, ln, qty, created=created, mode=None, tracking=None, refund=None,
                             close=created + self.u(2 * HOUR, 3 * DAY), close_status=REJECTED, action=A_WAITING)
        if x < 0.08:  # cancelled, before or after authorisation, never shipped
            auth = created + self.u(20 * MIN, 20 * HOUR) if r.random() < 0.5 else None
            return self.flow(o, ln, qty, created=created, auth=auth, mode=None, tracking=None, refund=None,
                             close=(auth or created) + self.u(2 * HOUR, 4 * DAY), close_status=CANCELLED,
                             action=A_WAITING)
        auth = created + self.u(20 * MIN, 20 * HOUR)
        mode = r.choices(["preauth", "tracking", "ordersku"], weights=[55, 30, 15])[0]
        tracking = r.choice(["auth", "later"]) if (mode == "tracking" or r.random() < 0.6) else None
        tracking_at = auth + self.u(1 * HOUR, 36 * HOUR) if tracking == "later" else None
        correct_at = None
        if tracking and r.random() < 0.06:
            correct_at = (tracking_at or auth) + self.u(30 * MIN, 10 * HOUR)
        arrive = auth + self.u(2 * DAY, 12 * DAY)
        grades = "".join("U" if r.random() < 0.92 else "D" for _ in range(qty))
        complete = arrive + self.u(2 * HOUR, 22 * HOUR)
        action = r.choices([A_REFUNDED, A_CREDIT, A_REPLACEMENT], weights=[84, 8, 8])[0]
        close = complete + self.u(1 * HOUR, 40 * HOUR)
        if action == A_REFUNDED and close > self.now and r.random() < 0.5:
            action = A_WAITING  # still open now; the refund decision is not recorded yet
        return self.flow(o, ln, qty, created=created, auth=auth, mode=mode, tracking=tracking,
                         tracking_at=tracking_at, correct_at=correct_at, arrive=arrive, complete=complete,
                         grades=grades, quarantine=r.random() < 0.5, refund="auto" if action in (
                             A_REFUNDED, A_WAITING) else None,
                         shipping=r.random() < 0.05, redeliver=r.choice([1, 2]) if r.random() < 0.03 else 0,
                         close=close, action=action, messages=r.random() < 0.3)

    def bg_two_rmas(self, created: int) -> None:
        """Several RMAs of one order, each with its own parcel and timeline."""
        o = self.order(created - self.u(1 * DAY, 25 * DAY), self.random_items(extra=self.rng.choice([1, 2])))
        a, b = self.rng.sample(o.lines, 2)
        self.bg_rma(o, a, created)
        created_b = created + self.u(1 * HOUR, 8 * DAY)
        if created_b < self.T - MIN:
            self.bg_rma(o, b, created_b)

    def bg_shared_parcel(self, created: int) -> None:
        self.shared_parcel(created)

    def shared_parcel(self, created: int, with_tracking: bool | None = None) -> tuple[Order, list[Rma], Wms]:
        """Two RMA lines of one order in one unannounced parcel (linked by tracking, or order+SKU)."""
        r = self.rng
        o = self.order(created - self.u(1 * DAY, 25 * DAY), self.random_items(extra=r.choice([1, 2])))
        la, lb = r.sample(o.lines, 2)
        if with_tracking is None:
            with_tracking = r.random() < 0.7
        trk, carrier = self.tracking_number()
        auth = created + self.u(20 * MIN, 20 * HOUR)
        rmas = []
        for k, ln in enumerate((la, lb)):
            rma = self.new_rma(o, ln, ln.quantity, created + k * self.u(1 * MIN, 30 * MIN), A_REFUNDED)
            c = "Return authorised, prepaid label sent."
            if with_tracking:
                c += " " + self.tracking_comment(trk)
            rma.to(auth + k * MIN, AWAITING, c)
            rmas.append(rma)
        arrive = auth + self.u(2 * DAY, 12 * DAY)
        complete = arrive + self.u(2 * HOUR, 22 * HOUR)
        w = self.new_wms(o.ref, arrive, tracking=trk if with_tracking else None, carrier=carrier)
        w.arrived = arrive + self.u(10 * US, 20 * MIN)
        w.completed = complete
        for ln in (la, lb):
            self.grade(w, ln.sku, "U" * ln.quantity, w.arrived, complete)
        self.commit_wms(w)
        self.adjust(complete + self.u(15 * MIN, 6 * HOUR), w.ref,
                    [(ln.product, ln.quantity, 0, 0, 0) for ln in (la, lb)])
        self.refund(o, complete + self.u(1 * HOUR, 44 * HOUR),
                    [self.refund_line(o, ln, ln.quantity) for ln in (la, lb)], rma=rmas[0].ref)
        close = complete + self.u(1 * HOUR, 40 * HOUR)
        for k, rma in enumerate(rmas):
            rma.to(close + k * MIN, COMPLETE, "Refund issued.")
            self.commit_rma(rma)
        return o, rmas, w

    # ------------------------------------------------------------ finish
    def finish(self) -> dict:
        from pipelines.demo.world_payments import write_payments

        write_payments(self)
        r = self.rng
        # stock levels: storefront oc_product and WMS stocks, in sync unless a case set a gap
        with open(self.out / "wms" / "stocks.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for p in self.products:
                self._row("oc_product", (p.product_id, p.sku, p.quantity, _d4(p.price), 1, 1, fmt_oc(sec(p.modified))))
                avail = p.quantity + p.gap
                reserved = r.randint(0, 4)
                rec = {"id": self.uid(), "updatedAt": fmt_wms(self.now - self.u(1 * MIN, 5 * HOUR)), "sku": p.sku,
                       "name": p.name, "barcodes": [f"40{p.product_id:010d}{r.randint(0, 9)}"],
                       "totalStockAmount": avail + reserved, "availableStock": avail, "reservedStock": reserved,
                       "receivedItemAmount": avail + reserved + r.randint(0, 200),
                       "damagedItemAmount": r.randint(0, 6), "expiredAmount": 0, "lostItemAmount": r.randint(0, 3)}
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")
                self.counts["stocks"] += 1
        for table, rows in (("oc_order_status", ORDER_STATUSES), ("oc_return_status", RETURN_STATUSES),
                            ("oc_return_reason", RETURN_REASONS), ("oc_return_action", RETURN_ACTIONS)):
            for i, en, de in rows:
                self._row(table, (i, 1, en))
                self._row(table, (i, 2, de))
        self._flush_db()
        self.db.commit()
        self.db.close()
        self.f_returns.close()
        self.f_adj.close()
        for f, _ in self._ledger.values():
            f.close()
        self.counts["ledger_files"] = len(self._ledger)
        self.counts["expected_rejects"] = len(self.expected_rejects)
        counts = {k: self.counts[k] for k in sorted(self.counts)}
        manifest = {
            "generator": "pipelines.demo.world",
            "seed": self.seed, "n_returns": self.n_returns, "end_date": self.end_date.isoformat(),
            "business_date": self.end_date.isoformat(),
            "as_of": fmt_wms(self.T)[:19] + "Z", "now": fmt_wms(self.now)[:19] + "Z",
            "tenant_id": TENANT_ID, "token": TOKEN, "payments_key": PAYMENTS_KEY, "store_currency": STORE_CURRENCY,
            "files": {"storefront": "storefront.sqlite", "table_prefix": "oc_",
                      "wms_returns": "wms/returns.jsonl", "wms_stock_adjustments": "wms/stock_adjustments.jsonl",
                      "wms_stocks": "wms/stocks.jsonl", "ledger_dir": "ledger",
                      "payment_refunds": "payments/refunds.jsonl",
                      "ground_truth": "ground_truth.json"},
            "counts": counts,
            "count_definitions": {
                "oc_*": "rows of each storefront table (language tables hold languages 1 and 2)",
                "wms_line_items": "line items over all WMS returns (one per physical unit)",
                "stock_adjustment_lines": "lineItems over all stock adjustments",
                "ledger_messages": "lines of ledger/*.jsonl, redeliveries and the invalid line included",
                "refund_messages": "valid refund_management.updated lines, redeliveries and the rejected one "
                                   "included",
                "distinct_credit_notes": "credit notes of the valid refund messages (the rejected one excluded), "
                                         "any status",
                "refund_lines": "distinct (credit_note_number, order_item_id) of those credit notes, SHIPPING "
                                "and not-money-out lines included",
                "other_messages": "return_management.* messages (to be ignored by the refund ledger)",
                "expected_rejects": "ledger lines a connector must reject (listed in expected_rejects)",
                "payment_refunds": "refund objects of the payment provider (payments/refunds.jsonl), the "
                                   "malformed ones included (listed in expected_payment_rejects)",
            },
            "expected_rejects": self.expected_rejects,
            "expected_payment_rejects": self.expected_payment_rejects,
            "probe_case": self.probe_case,
            "ground_truth": {"cases": self.n_cases, "lookalikes": self.n_lookalikes, "by_rule": dict(self.by_rule)},
        }
        self._write_ground_truth()
        (self.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest

    def _write_ground_truth(self) -> None:
        """{"business_date": D, "cases": [...], "lookalikes": [...]}, one entry per line."""
        parts = [self.out / ".ground_truth.cases.part", self.out / ".ground_truth.lookalikes.part"]
        self.f_gt_cases.close()
        self.f_gt_lookalikes.close()
        with open(self.out / "ground_truth.json", "w", encoding="utf-8", newline="\n") as f:
            f.write('{"business_date": ' + json.dumps(self.end_date.isoformat()) + ',\n"cases": [\n')
            for k, part in enumerate(parts):
                with open(part, encoding="utf-8") as src:
                    while chunk := src.read(1 << 20):
                        f.write(chunk)
                f.write('\n],\n"lookalikes": [\n' if k == 0 else "\n]}\n")
        for part in parts:
            part.unlink()


# --------------------------------------------------------------------------- injected cases
# Times below are in days relative to T (negative = before T). Every case uses fresh orders.
# Co-firing is listed on each variant; amounts are Decimal and rounded half-up only when written.

def _sid(rule: str, i: int) -> str:
    return f"{rule.lower()}-{i + 1:04d}"


def _clean_refunded(w: World, o: Order, ln: Line, qty: int, created: float, **kw) -> Flow:
    """A clean, fully refunded lifecycle starting ``created`` days before T (helper for cases)."""
    c = w.at(created)
    args = dict(created=c, auth=c + w.u(1 * HOUR, 12 * HOUR), mode="preauth", tracking="auth",
                arrive=c + w.u(3 * DAY, 5 * DAY))
    args["complete"] = args["arrive"] + w.u(3 * HOUR, 10 * HOUR)
    args["refund_at"] = args["complete"] + w.u(2 * HOUR, 20 * HOUR)
    args["close"] = args["complete"] + w.u(3 * HOUR, 20 * HOUR)
    args.update(kw)
    return w.flow(o, ln, qty, **args)


def case_duplicate_refund(w: World, i: int) -> None:
    sid, v = _sid("DUPLICATE_REFUND", i), i % 3
    if v == 0:
        # qty-1 RMA received and refunded twice by two credit notes (retry created a new number).
        # Fires DUPLICATE_REFUND (2r - ug) and REFUND_WITHOUT_RECEIPT (2 refunded units > 1 received).
        o, ln = w.case_order(w.at(-20))
        f = _clean_refunded(w, o, ln, 1, -20)  # completes ~ -16, refunded ~ -15.5
        cn2 = w.refund(o, w.at(-8), [w.refund_line(o, ln, 1)], rma=f.rma.ref)
        refunded = 2 * money(f.ug)
        w.expect(sid, "DUPLICATE_REFUND", w.ol_keys(f), refunded - f.ug, note=f"{f.refunds[0]} and {cn2}")
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), f.ug, 1, note="2 units refunded, 1 received")
    elif v == 1:
        # qty-2 RMA, both received; credit note for 2 units, then another for 1 unit.
        # Fires DUPLICATE_REFUND and REFUND_WITHOUT_RECEIPT (3 > 2).
        o, ln = w.case_order(w.at(-18), qty=2)
        f = _clean_refunded(w, o, ln, 2, -18)
        cn2 = w.refund(o, w.at(-6), [w.refund_line(o, ln, 1)], rma=f.rma.ref)
        refunded = money(2 * f.ug) + money(f.ug)
        w.expect(sid, "DUPLICATE_REFUND", w.ol_keys(f), refunded - 2 * f.ug, note=f"{f.refunds[0]} and {cn2}")
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), f.ug, 1, note="3 units refunded, 2 received")
    else:
        # Authorised 6 days ago, parcel not arrived, refunded twice.
        # Fires DUPLICATE_REFUND and REFUND_WITHOUT_RECEIPT (2 > 0).
        o, ln = w.case_order(w.at(-7))
        f = w.flow(o, ln, 1, created=w.at(-6.5), auth=w.at(-6), mode="preauth", refund=1,
                   refund_at=w.at(-5))
        cn2 = w.refund(o, w.at(-3), [w.refund_line(o, ln, 1)], rma=f.rma.ref)
        w.expect(sid, "DUPLICATE_REFUND", w.ol_keys(f), 2 * money(f.ug) - f.ug, note=f"{f.refunds[0]} and {cn2}")
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), 2 * f.ug, 2, note="2 units refunded, none received")


def case_over_refund(w: World, i: int) -> None:
    sid, v = _sid("OVER_REFUND", i), i % 3
    if v == 0:
        # One credit note of unit gross + an excess below half a unit. Fires OVER_REFUND only.
        o, ln = w.case_order(w.at(-15))
        ug = o.ug(ln)
        excess = money(ug * Decimal(str(round(w.rng.uniform(0.12, 0.4), 3))))
        f = _clean_refunded(w, o, ln, 1, -15, refund_amount=money(ug) + excess, refund=None)
        w.expect(sid, "OVER_REFUND", w.ol_keys(f), money(ug) + excess - ug, note=f"one credit note, excess {excess}")
    elif v == 1:
        # A Return refund on an order line that has no RMA at all: requested 0.
        # Fires OVER_REFUND (whole amount) and REFUND_WITHOUT_RECEIPT (1 unit, nothing received).
        o = w.order(w.at(-20), w.random_items(extra=w.rng.choice([1, 2])))
        ln = w.rng.choice(o.lines)
        amount = money(o.ug(ln))
        cn = w.refund(o, w.at(-7), [w.refund_line(o, ln, 1)], rma=None)
        w.expect(sid, "OVER_REFUND", w.ol_keys((o, ln)), amount, note=f"{cn}: Return refund, no RMA")
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys((o, ln)), o.ug(ln), 1, note=f"{cn}: no RMA, no parcel")
    else:
        # qty 2, both received; one credit note for 2 units + excess < ug/2. Fires OVER_REFUND only.
        o, ln = w.case_order(w.at(-14), qty=2)
        ug = o.ug(ln)
        excess = money(ug * Decimal(str(round(w.rng.uniform(0.12, 0.4), 3))))
        f = _clean_refunded(w, o, ln, 2, -14, refund_amount=money(2 * ug) + excess, refund=None)
        w.expect(sid, "OVER_REFUND", w.ol_keys(f), money(2 * ug) + excess - 2 * ug, note=f"excess {excess}")


def case_refund_without_receipt(w: World, i: int) -> None:
    sid, v = _sid("REFUND_WITHOUT_RECEIPT", i), i % 3
    if v == 0:
        # Authorised 5 days ago (pre-authorised WMS return, not arrived), refunded 3 days ago.
        o, ln = w.case_order(w.at(-6))
        f = w.flow(o, ln, 1, created=w.at(-5.5), auth=w.at(-5), mode="preauth", refund=1, refund_at=w.at(-3))
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), f.ug, 1, note="refunded, parcel not arrived")
    elif v == 1:
        # No WMS return at all (unannounced flow, nothing arrived); 2 units refunded.
        o, ln = w.case_order(w.at(-5), qty=2)
        f = w.flow(o, ln, 2, created=w.at(-4.5), auth=w.at(-4), mode="tracking", refund=2, refund_at=w.at(-2))
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), 2 * f.ug, 2, note="refunded, no WMS return")
    else:
        # qty 2: parcel held 1 unit (1 Undamaged + 1 Missing), both units refunded.
        # Fires REFUND_WITHOUT_RECEIPT (2 > 1) and QUANTITY_MISMATCH (received 1 vs requested 2).
        o, ln = w.case_order(w.at(-14), qty=2)
        f = _clean_refunded(w, o, ln, 2, -14, grades="UM", refund=2)
        w.expect(sid, "REFUND_WITHOUT_RECEIPT", w.ol_keys(f), f.ug, 1, note="1 unit missing but refunded")
        w.expect(sid, "QUANTITY_MISMATCH", w.ol_keys(f), f.ug, -1, note="1 of 2 units received")


def case_refund_for_damaged(w: World, i: int) -> None:
    sid, v = _sid("REFUND_FOR_DAMAGED_GOODS", i), i % 3
    if v == 0:
        # 1 unit received Damaged (completed ~5 days ago, quarantined: found 1 + put in quarantine 1),
        # refunded anyway. Fires REFUND_FOR_DAMAGED_GOODS only.
        o, ln = w.case_order(w.at(-12))
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-6), complete=w.at(-5),
                   grades="D", quarantine=bool(i % 2 == 0), refund=1, refund_at=w.at(-4.5), close=w.at(-4.3))
        w.expect(sid, "REFUND_FOR_DAMAGED_GOODS", w.ol_keys(f), f.ug, note="damaged unit refunded")
    elif v == 1:
        # qty 2: 1 Undamaged + 1 Damaged, 2 units refunded. Fires REFUND_FOR_DAMAGED_GOODS only.
        o, ln = w.case_order(w.at(-13), qty=2)
        f = w.flow(o, ln, 2, created=w.at(-13), auth=w.at(-12.5), mode="tracking", arrive=w.at(-7),
                   complete=w.at(-6), grades="UD", refund=2, refund_at=w.at(-5.5), close=w.at(-5.3))
        w.expect(sid, "REFUND_FOR_DAMAGED_GOODS", w.ol_keys(f), f.ug, note="1 of 2 refunded units damaged")
    else:
        # Arrived 3 days ago, graded Damaged 2.5 days ago, return not yet Completed; refunded.
        # Fires REFUND_FOR_DAMAGED_GOODS only (not Completed: no QUANTITY/RESTOCK/STATUS rule).
        o, ln = w.case_order(w.at(-9))
        f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8.5), arrive=w.at(-3), processed=[w.at(-2.5)],
                   complete=None, grades="D", refund=1, refund_at=w.at(-2))
        w.expect(sid, "REFUND_FOR_DAMAGED_GOODS", w.ol_keys(f), f.ug, note="graded damaged, refunded, open")


def case_received_not_refunded(w: World, i: int) -> None:
    sid, v = _sid("RECEIVED_NOT_REFUNDED", i), i % 3
    if v == 0:
        # Completed 6 days ago Undamaged, restocked, RMA Complete (action Refunded), no refund.
        o, ln = w.case_order(w.at(-14))
        f = w.flow(o, ln, 1, created=w.at(-14), auth=w.at(-13.5), arrive=w.at(-7), complete=w.at(-6),
                   refund=None, close=w.at(-5.5))
        w.expect(sid, "RECEIVED_NOT_REFUNDED", w.ol_keys(f), f.ug, note="accepted 1, refunded 0")
    elif v == 1:
        # qty 2 both Undamaged, only 1 unit refunded. Fires RECEIVED_NOT_REFUNDED only.
        o, ln = w.case_order(w.at(-13), qty=2)
        f = w.flow(o, ln, 2, created=w.at(-13), auth=w.at(-12.5), mode="ordersku", tracking=None,
                   arrive=w.at(-6), complete=w.at(-5), refund=1, refund_at=w.at(-4.5), close=w.at(-4.4))
        w.expect(sid, "RECEIVED_NOT_REFUNDED", w.ol_keys(f), f.ug, note="accepted 2, refunded 1")
    else:
        # Completed 4 days ago, RMA still Awaiting Products (action Waiting for return), no refund.
        # Fires RECEIVED_NOT_REFUNDED and STATUS_MISMATCH (wms_completed_rma_open).
        o, ln = w.case_order(w.at(-12))
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-5), complete=w.at(-4),
                   refund=None, close=None, action=A_WAITING)
        w.expect(sid, "RECEIVED_NOT_REFUNDED", w.ol_keys(f), f.ug, note="nobody closed it")
        w.expect(sid, "STATUS_MISMATCH", w.rma_keys(f, "wms_completed_rma_open"), 0, note="RMA still open")


def case_quantity_mismatch(w: World, i: int) -> None:
    sid, v = _sid("QUANTITY_MISMATCH", i), i % 2
    if v == 0:
        # RMA qty 2; WMS completed with 1 Undamaged + 1 Missing; 1 unit refunded, 1 restocked.
        o, ln = w.case_order(w.at(-14), qty=2)
        f = _clean_refunded(w, o, ln, 2, -14, grades="UM")
        w.expect(sid, "QUANTITY_MISMATCH", w.ol_keys(f), f.ug, -1, note="1 unit missing from the parcel")
    else:
        # RMA qty 1 of an order line of 2; the unannounced parcel held 2 units, both Undamaged and
        # restocked, 1 refunded. Fires QUANTITY_MISMATCH (+1) and RECEIVED_NOT_REFUNDED (2 > 1).
        o, ln = w.case_order(w.at(-15), qty=2)
        f = _clean_refunded(w, o, ln, 1, -15, mode="tracking", grades="UU", refund=1)
        w.expect(sid, "QUANTITY_MISMATCH", w.ol_keys(f), f.ug, 1, note="2 units arrived for an RMA of 1")
        w.expect(sid, "RECEIVED_NOT_REFUNDED", w.ol_keys(f), f.ug, note="extra unit accepted, not refunded")


def case_rma_not_received(w: World, i: int) -> None:
    sid, v = _sid("RMA_NOT_RECEIVED", i), i % 2
    if v == 0:
        # Authorised 30 days ago (tracking in the same comment), pre-authorised WMS return never arrived.
        o, ln = w.case_order(w.at(-31))
        f = w.flow(o, ln, 1, created=w.at(-31), auth=w.at(-30), mode="preauth", refund=None)
        w.expect(sid, "RMA_NOT_RECEIVED", w.rma_keys(f), f.ug, note="authorised 30 days ago")
    else:
        # qty 2 authorised 25 days ago, no WMS return at all.
        o, ln = w.case_order(w.at(-26), qty=2)
        f = w.flow(o, ln, 2, created=w.at(-26), auth=w.at(-25), mode="tracking", refund=None)
        w.expect(sid, "RMA_NOT_RECEIVED", w.rma_keys(f), 2 * f.ug, note="authorised 25 days ago, 2 units")


def case_status_mismatch(w: World, i: int) -> None:
    sid, v = _sid("STATUS_MISMATCH", i), i % 4
    if v == 0:
        # WMS completed 5 days ago, refunded, restocked; RMA still Awaiting Products.
        o, ln = w.case_order(w.at(-12))
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-6), complete=w.at(-5),
                   refund_at=w.at(-4.5), close=None)
        w.expect(sid, "STATUS_MISMATCH", w.rma_keys(f, "wms_completed_rma_open"), 0, note="RMA never closed")
    elif v == 1:
        # RMA Complete 2 days ago, parcel arrived 3 days ago and graded, WMS not Completed; refunded.
        o, ln = w.case_order(w.at(-9))
        f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8.5), arrive=w.at(-3), processed=[w.at(-2.7)],
                   complete=None, refund=1, refund_at=w.at(-2.5), close=w.at(-2))
        w.expect(sid, "STATUS_MISMATCH", w.rma_keys(f, "rma_completed_wms_not_completed"), 0,
                 note="closed before the warehouse finished")
    elif v == 2:
        # RMA Complete 3 days ago (replacement sent), pre-authorised WMS return never arrived.
        o, ln = w.case_order(w.at(-9))
        f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8), mode="preauth", refund=None, close=w.at(-3),
                   action=A_REPLACEMENT)
        w.expect(sid, "STATUS_MISMATCH", w.rma_keys(f, "rma_completed_wms_not_completed"), 0,
                 note="closed, parcel never arrived")
    else:
        # RMA still Pending (never authorised); the parcel came unannounced (no tracking id, matched by
        # order + SKU), completed 5 days ago, refunded.
        o, ln = w.case_order(w.at(-9))
        f = w.flow(o, ln, 1, created=w.at(-9), auth=None, mode="ordersku", tracking=None, arrive=w.at(-6),
                   complete=w.at(-5), refund=1, refund_at=w.at(-4.5), close=None)
        w.expect(sid, "STATUS_MISMATCH", w.rma_keys(f, "wms_completed_rma_open"), 0, note="RMA still Pending")


def case_orphan_wms_return(w: World, i: int) -> None:
    sid, v = _sid("ORPHAN_WMS_RETURN", i), i % 3
    if v == 0:
        # Unannounced parcel for an existing order line, no RMA, unknown tracking; restocked correctly.
        o = w.order(w.at(-25), w.random_items())
        ln = w.rng.choice(o.lines)
        p = w.parcel(o.ref, ln.sku, ln.product, "U", w.at(-8), w.at(-7.5))
        w.expect(sid, "ORPHAN_WMS_RETURN", {"return_reference": p.ref}, o.ug(ln), note="no RMA for this parcel")
    elif v == 1:
        # Unannounced parcel filed under an order the storefront does not have: amount 0.
        prod = w.pick_products(1)[0]
        ref = str(w.next_id("unknown_order"))
        p = w.parcel(ref, prod.sku, prod, "U", w.at(-6), w.at(-5.5))
        w.expect(sid, "ORPHAN_WMS_RETURN", {"return_reference": p.ref}, 0, note=f"unknown order {ref}")
    else:
        # 2 units (1 Undamaged, 1 Damaged) of an existing order line, no RMA, no tracking id.
        prod = w.pick_products(1)[0]
        o = w.order(w.at(-30), w.random_items([(prod, 2)]))
        ln = next(x for x in o.lines if x.product is prod)
        p = w.parcel(o.ref, ln.sku, ln.product, "UD", w.at(-5), w.at(-4.5), tracking=False)
        w.expect(sid, "ORPHAN_WMS_RETURN", {"return_reference": p.ref}, 2 * o.ug(ln), note="2 units, no RMA")


def case_reference_mismatch(w: World, i: int) -> None:
    sid, v = _sid("REFERENCE_MISMATCH", i), i % 3
    if i == 0:
        # The probe case: WMS return last updated 40 days before T, filed under a wrong order, found
        # by the RMA's tracking number only (a short updatedAt lookback will not see it).
        o, ln = w.case_order(w.at(-52))
        wrong = w.order(w.at(-55), w.random_items(exclude=(ln.product,)))
        f = w.flow(o, ln, 1, created=w.at(-50), auth=w.at(-49.5), mode="tracking", tracking="auth",
                   wms_order_ref=wrong.ref, arrive=w.at(-41.5, 1), complete=w.at(-40.1, 0.5),
                   restock_at=w.at(-40, 0.5), refund_at=w.at(-39.5), close=w.at(-39))
        w.probe_case = {"rma_reference": f.rma.ref, "return_reference": f.wms.ref, "tracking_id": f.tracking,
                        "order_reference": o.ref, "wms_order_reference": wrong.ref,
                        "wms_updated_at": fmt_wms(max(f.wms.completed, *(it[2] for it in f.wms.items)))}
        w.expect(sid, "REFERENCE_MISMATCH", {"return_reference": f.wms.ref}, 0,
                 note=f"probe case: filed under order {wrong.ref}, last updated 40 days before T")
        return
    o, ln = w.case_order(w.at(-16))
    wrong = w.order(w.at(-20), w.random_items(exclude=(ln.product,)))
    if v == 1:
        # Tracking pasted, then corrected: the WMS return carries the corrected number (latest wins).
        c = w.at(-16)
        f = w.flow(o, ln, 1, created=c, auth=c + 6 * HOUR, mode="tracking", tracking="auth",
                   correct_at=c + 30 * HOUR, wms_order_ref=wrong.ref, arrive=w.at(-10), complete=w.at(-9.6),
                   refund_at=w.at(-9), close=w.at(-8.5))
        note = f"tracking corrected; filed under order {wrong.ref}"
    else:
        # RMA of order A with tracking X; unannounced WMS return with tracking X filed under order B.
        f = _clean_refunded(w, o, ln, 1, -16, mode="tracking", wms_order_ref=wrong.ref)
        note = f"filed under order {wrong.ref}"
    w.expect(sid, "REFERENCE_MISMATCH", {"return_reference": f.wms.ref}, 0, note=note)


def case_restock_mismatch(w: World, i: int) -> None:
    sid, v = _sid("RESTOCK_MISMATCH", i), i % 4
    if v == 0:
        # Completed 4 days ago, 1 Undamaged, never restocked (refunded, closed).
        o, ln = w.case_order(w.at(-12))
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-5), complete=w.at(-4), restock=None,
                   refund_at=w.at(-3.5), close=w.at(-3.4))
        w.expect(sid, "RESTOCK_MISMATCH", {"return_reference": f.wms.ref, "sku": ln.sku}, f.ug, -1,
                 note="missing restock")
    elif v == 1:
        # 1 Damaged unit put back on sale (found 1, nothing quarantined); not refunded.
        o, ln = w.case_order(w.at(-12))
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-6), complete=w.at(-5), grades="D",
                   restock=[(ln.product, 1, 0, 0, 0)], refund=None, close=w.at(-4.5), action=A_REPLACEMENT)
        w.expect(sid, "RESTOCK_MISMATCH", {"return_reference": f.wms.ref, "sku": ln.sku}, f.ug, 1,
                 note="damaged goods put back on sale")
    elif v == 2:
        # 2 Undamaged units, only 1 restocked.
        o, ln = w.case_order(w.at(-13), qty=2)
        f = w.flow(o, ln, 2, created=w.at(-13), auth=w.at(-12.5), mode="tracking", arrive=w.at(-7),
                   complete=w.at(-6), restock=[(ln.product, 1, 0, 0, 0)], refund_at=w.at(-5.5), close=w.at(-5.4))
        w.expect(sid, "RESTOCK_MISMATCH", {"return_reference": f.wms.ref, "sku": ln.sku}, f.ug, -1,
                 note="restocked 1 of 2")
    else:
        # Restock booked on the wrong SKU: two grains, the return's SKU (-1) and the other SKU (+1,
        # amount 0: the return's order has no line of that SKU).
        o, ln = w.case_order(w.at(-12))
        other = w.pick_products(1, exclude=tuple(x.product for x in o.lines))[0]
        f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-6), complete=w.at(-5),
                   restock=[(other, 1, 0, 0, 0)], refund_at=w.at(-4.5), close=w.at(-4.4))
        w.expect(sid, "RESTOCK_MISMATCH", {"return_reference": f.wms.ref, "sku": ln.sku}, f.ug, -1,
                 note=f"restock booked on {other.sku}")
        w.expect(sid, "RESTOCK_MISMATCH", {"return_reference": f.wms.ref, "sku": other.sku}, 0, 1,
                 note=f"{other.sku} is not on the order")


def case_orphan_refund(w: World, i: int) -> None:
    sid, v = _sid("ORPHAN_REFUND", i), i % 2
    o = w.order(w.at(-20), w.random_items())
    item = str(w.next_id("orphan_item"))
    amount = money(o.ug(o.lines[0]))
    if v == 0:
        # A Return credit note naming an order line the storefront does not have.
        cn = w.refund(o, w.at(-5), [w.refund_line(o, item, amount=amount, vat=o.lines[0].product.vat)], rma=None)
    else:
        # An Appeasement credit note naming a non-existent order line (any refund type counts).
        amount = money(amount / 4)
        cn = w.refund(o, w.at(-4), [w.refund_line(o, item, amount=amount)], rma=None, refund_type="Appeasement")
    w.expect(sid, "ORPHAN_REFUND", {"refund_reference": cn, "order_line_reference": item}, amount,
             note=f"order {o.ref} has no line {item}")


def _unsynced_product(w: World, gap: int) -> Product:
    # keep gap x price away from a half-cent tie
    return w.product(dedicated=True, check=lambda p: (gap * p.price * 10000) % 100 != 50)


def case_unsynced_stock(w: World, i: int) -> None:
    sid, v = _sid("UNSYNCED_STOCK_ADJUSTMENT", i), i % 2
    gap = w.rng.randint(1, 3)
    p = _unsynced_product(w, gap)
    p.gap = gap
    if v == 0:
        # Return restocked 3 days ago; the WMS has `gap` more available units than the shop.
        o, ln = w.case_order(w.at(-11), product=p)
        w.flow(o, ln, 1, created=w.at(-11), auth=w.at(-10.5), arrive=w.at(-4), complete=w.at(-3.3, 1),
               restock_at=w.at(-3, 1), refund_at=w.at(-2.8, 1), close=w.at(-2.5, 1))
    else:
        # qty 2 restocked 6 days ago (inside the 7-day window).
        o, ln = w.case_order(w.at(-14), qty=2, product=p)
        w.flow(o, ln, 2, created=w.at(-14), auth=w.at(-13.5), arrive=w.at(-7), complete=w.at(-6.3, 1),
               restock_at=w.at(-6, 1), refund_at=w.at(-5.5), close=w.at(-5.4))
    w.expect(sid, "UNSYNCED_STOCK_ADJUSTMENT", {"sku": p.sku}, gap * p.price, gap,
             note=f"WMS available = shop quantity + {gap}")


# --------------------------------------------------------------------------- look-alikes (must fire nothing)

ORDER_LINE_MONEY = ["DUPLICATE_REFUND", "OVER_REFUND", "REFUND_WITHOUT_RECEIPT"]


def _la(kind: str, i: int) -> str:
    return f"{kind}-{i + 1:04d}"


def la_redelivered_refund(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15, redeliver=2)
    w.lookalike(_la("redelivered_refund", i), "redelivered_refund",
                "the same refund message delivered three times (same file and the next day's file)",
                ORDER_LINE_MONEY, {**w.look_keys(f), "credit_note_number": f.refunds[0]})


def la_partial_returns(w: World, i: int) -> None:
    # qty 2 order line, two RMAs of 1 created together, two WMS returns, two credit notes (EUR).
    o, ln = w.case_order(w.at(-21), qty=2, currency="EUR")
    c = w.at(-20)
    a = w.flow(o, ln, 1, created=c, auth=c + 5 * HOUR, arrive=w.at(-14), complete=w.at(-13.5),
               refund_at=w.at(-13), close=w.at(-12.8))
    b = w.flow(o, ln, 1, created=c + 2 * HOUR, auth=c + 6 * HOUR, mode="preauth", arrive=w.at(-9),
               complete=w.at(-8.5), refund_at=w.at(-8), close=w.at(-7.8))
    w.lookalike(_la("partial_returns_two_credit_notes", i), "partial_returns_two_credit_notes",
                "two legitimate partial returns of one order line: two RMAs, two parcels, two credit notes",
                ["DUPLICATE_REFUND", "OVER_REFUND", "QUANTITY_MISMATCH", "REFUND_WITHOUT_RECEIPT",
                 "RECEIVED_NOT_REFUNDED"],
                {**w.ol_keys(a), "rma_references": [a.rma.ref, b.rma.ref],
                 "credit_note_numbers": a.refunds + b.refunds})


def la_refund_within_tolerance(w: World, i: int) -> None:
    # refund rounded up to the next cent: over by 0.003..0.008, inside the 0.01 tolerance
    for _ in range(500):
        p = w.pick_products(1)[0]
        cur = w.rng.choice(["USD", "GBP"])
        ug = (p.price + p.tax) * CURRENCIES[cur]
        up = ug.quantize(CENT, rounding=ROUND_CEILING)
        if Decimal("0.003") <= up - ug <= Decimal("0.008"):
            break
    o, ln = w.case_order(w.at(-15), currency=cur, product=p)
    f = _clean_refunded(w, o, ln, 1, -15, refund=None, refund_amount=up)
    w.lookalike(_la("refund_within_tolerance", i), "refund_within_tolerance",
                f"refund {up} for a unit gross of {ug} (over by less than 0.01)",
                ["OVER_REFUND", "DUPLICATE_REFUND"], w.look_keys(f))


def la_appeasement_on_top(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15)
    cn = w.refund(o, w.at(-5), [w.refund_line(o, ln, amount=money(f.ug / 5))], rma=None, refund_type="Appeasement")
    w.lookalike(_la("appeasement_on_top", i), "appeasement_on_top",
                "an Appeasement credit note on top of the return's refund (not a Return refund)",
                ["DUPLICATE_REFUND", "OVER_REFUND", "ORPHAN_REFUND"],
                {**w.look_keys(f), "credit_note_numbers": [f.refunds[0], cn]})


def la_refund_before_arrival(w: World, i: int) -> None:
    # refunded 6 days ago, parcel arrived 2 days ago (before T), completed 1.7 days ago
    o, ln = w.case_order(w.at(-11))
    f = w.flow(o, ln, 1, created=w.at(-11), auth=w.at(-10), arrive=w.at(-2, 1), complete=w.at(-1.6, 0.5),
               refund=1, refund_at=w.at(-6), close=None)
    w.lookalike(_la("late_parcel_refunded_before_arrival", i), "late_parcel_refunded_before_arrival",
                "refund paid before the parcel arrived; it arrived before T", ["REFUND_WITHOUT_RECEIPT",
                                                                             "STATUS_MISMATCH"], w.look_keys(f))


def la_late_parcel_25d(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-26))
    f = w.flow(o, ln, 1, created=w.at(-25.5), auth=w.at(-25), arrive=w.at(-1, 2), processed=[w.at(-0.7, 1)],
               complete=None, refund=None)
    w.lookalike(_la("late_parcel_authorised_25d", i), "late_parcel_authorised_25d",
                "authorised 25 days ago, parcel arrived 1 day before T", ["RMA_NOT_RECEIVED"], w.look_keys(f))


def la_authorised_20d(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-21))
    f = w.flow(o, ln, 1, created=w.at(-20.5, 1), auth=w.at(-20 + 0.125, 1), mode=w.rng.choice(["preauth", "tracking"]),
               refund=None)
    w.lookalike(_la("authorised_20d_not_arrived", i), "authorised_20d_not_arrived",
                "authorised 20 days ago, not arrived yet (threshold 21)", ["RMA_NOT_RECEIVED"], w.look_keys(f))


def la_damaged_waiting(w: World, i: int) -> None:
    # arrived 2 days ago, graded Damaged only after T (T+3h), completed T+4h; refunded at T-1d
    o, ln = w.case_order(w.at(-9))
    f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8.5), arrive=w.at(-2), grades="D",
               processed=[w.T + 3 * HOUR], complete=w.T + 4 * HOUR, restock=None, refund=1, refund_at=w.at(-1),
               close=None)
    w.lookalike(_la("damaged_waiting_at_T_refunded", i), "damaged_waiting_at_T_refunded",
                "unit still WaitingToBeProcessed at T (graded Damaged after T), refunded before T",
                ["REFUND_FOR_DAMAGED_GOODS", "REFUND_WITHOUT_RECEIPT"], w.look_keys(f))


def la_replacement(w: World, i: int) -> None:
    action = A_REPLACEMENT if i % 2 == 0 else A_CREDIT
    o, ln = w.case_order(w.at(-14))
    f = w.flow(o, ln, 1, created=w.at(-14), auth=w.at(-13.5), arrive=w.at(-7), complete=w.at(-6), refund=None,
               close=w.at(-5.5), action=action)
    w.lookalike(_la("replacement_instead_of_refund", i), "replacement_instead_of_refund",
                "received, no refund, action " + ("Replacement Sent" if action == A_REPLACEMENT else "Credit Issued"),
                ["RECEIVED_NOT_REFUNDED"], w.look_keys(f))


def la_completed_1d_not_refunded(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-8))
    f = w.flow(o, ln, 1, created=w.at(-8), auth=w.at(-7.5), arrive=w.at(-1.8, 1), complete=w.at(-1.1, 1),
               refund_at=w.T + 3 * HOUR, close=w.at(-0.8, 1))
    w.lookalike(_la("completed_1d_not_refunded", i), "completed_1d_not_refunded",
                "completed a day before T, refund paid after T (SLA 3 days)", ["RECEIVED_NOT_REFUNDED"],
                w.look_keys(f))


def la_wms_completed_1d_rma_awaiting(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-8))
    f = w.flow(o, ln, 1, created=w.at(-8), auth=w.at(-7.5), arrive=w.at(-2, 1), complete=w.at(-1.2, 1),
               refund_at=w.at(-0.8, 1), close=None)
    w.lookalike(_la("wms_completed_1d_rma_awaiting", i), "wms_completed_1d_rma_awaiting",
                "WMS completed ~1 day before T, RMA still Awaiting Products (lag 2 days)", ["STATUS_MISMATCH"],
                w.look_keys(f))


def la_completed_12h_not_restocked(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-8))
    f = w.flow(o, ln, 1, created=w.at(-8), auth=w.at(-7.5), arrive=w.at(-1, 1), complete=w.at(-0.5, 1),
               restock_at=w.T + 2 * HOUR, refund=None, close=None)
    w.lookalike(_la("completed_12h_not_restocked", i), "completed_12h_not_restocked",
                "completed 12 hours before T, restocked after T", ["RESTOCK_MISMATCH", "RECEIVED_NOT_REFUNDED",
                                                                   "STATUS_MISMATCH"], w.look_keys(f))


def la_shipping_refund(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15, shipping=True)
    w.lookalike(_la("shipping_refund", i), "shipping_refund", "the credit note also refunds SHIPPING",
                ["OVER_REFUND", "DUPLICATE_REFUND", "ORPHAN_REFUND"],
                {**w.look_keys(f), "credit_note_number": f.refunds[0]})


def la_unannounced_tracking(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15, mode="tracking", tracking="later",
                        tracking_at=w.at(-15) + 14 * HOUR)
    w.lookalike(_la("unannounced_by_tracking", i), "unannounced_by_tracking",
                "unannounced WMS return tied to the RMA by its tracking number",
                ["ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH"], {**w.look_keys(f), "tracking_id": f.tracking})


def la_unannounced_order_sku(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15, mode="ordersku", tracking=None)
    w.lookalike(_la("unannounced_by_order_sku", i), "unannounced_by_order_sku",
                "unannounced WMS return without tracking id, tied by order + SKU",
                ["ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH"], w.look_keys(f))


def la_tracking_corrected(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15))
    c = w.at(-15)
    f = _clean_refunded(w, o, ln, 1, -15, mode="tracking", tracking="auth", correct_at=c + 20 * HOUR)
    w.lookalike(_la("tracking_corrected", i), "tracking_corrected",
                "tracking number corrected later; the WMS return carries the corrected one",
                ["ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH"], {**w.look_keys(f), "tracking_id": f.tracking})


def la_stock_gap_old_restock(w: World, i: int) -> None:
    gap = w.rng.randint(1, 3)
    p = w.product(dedicated=True)
    p.gap = gap
    o, ln = w.case_order(w.at(-18), product=p)
    f = w.flow(o, ln, 1, created=w.at(-18), auth=w.at(-17.5), arrive=w.at(-11), complete=w.at(-10.3, 1),
               restock_at=w.at(-10, 1), refund_at=w.at(-9.5), close=w.at(-9.4))
    w.lookalike(_la("stock_gap_old_restock", i), "stock_gap_old_restock",
                f"WMS has {gap} more units than the shop, but the last return restock was 10 days ago",
                ["UNSYNCED_STOCK_ADJUSTMENT"], {"sku": p.sku, "return_reference": f.wms.ref})


def la_stock_gap_cycle_count(w: World, i: int) -> None:
    gap = w.rng.randint(1, 3)
    p = w.product(dedicated=True)
    p.gap = gap
    w.adjust(w.at(-2), None, [(p, gap, 0, 0, 0)], ttype="CycleCount")
    w.lookalike(_la("stock_gap_cycle_count", i), "stock_gap_cycle_count",
                f"WMS has {gap} more units than the shop after a cycle count (not return-related)",
                ["UNSYNCED_STOCK_ADJUSTMENT"], {"sku": p.sku})


def la_refund_after_T(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-12))
    f = w.flow(o, ln, 1, created=w.at(-12), auth=w.at(-11.5), arrive=w.at(-6), complete=w.at(-5),
               refund_at=w.at(-4), close=w.at(-3.8))
    cn = w.refund(o, w.T + 2 * HOUR, [w.refund_line(o, ln, 1)], rma=f.rma.ref)
    w.lookalike(_la("refund_after_T", i), "refund_after_T",
                "a second credit note dated after T (would be a duplicate refund on D+1)",
                ["DUPLICATE_REFUND", "REFUND_WITHOUT_RECEIPT", "OVER_REFUND"],
                {**w.look_keys(f), "credit_note_numbers": [f.refunds[0], cn]})


def la_rma_completed_after_T(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-9))
    f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8.5), arrive=w.at(-1.5), processed=[w.at(-1.2)],
               complete=None, refund=None, close=w.T + 1 * HOUR)
    w.lookalike(_la("rma_completed_after_T", i), "rma_completed_after_T",
                "RMA closed after T while the parcel is still being processed (AUTHORIZED for D)",
                ["STATUS_MISMATCH"], w.look_keys(f))


def la_refund_not_money_out(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-12))
    f = _clean_refunded(w, o, ln, 1, -12)
    if i % 2 == 0:
        cn = w.refund(o, w.at(-3), [w.refund_line(o, ln, 1)], rma=f.rma.ref, status="PENDING")
        what = "a second credit note still PENDING"
    else:
        cn = w.refund(o, w.at(-3), [w.refund_line(o, ln, 1, pay_status="PENDING")], rma=f.rma.ref)
        what = "a second credit note RELEASED but its payment not REFUNDED"
    w.lookalike(_la("refund_not_money_out", i), "refund_not_money_out", what, ORDER_LINE_MONEY,
                {**w.look_keys(f), "credit_note_numbers": [f.refunds[0], cn]})


def la_cancellation_refund(w: World, i: int) -> None:
    o = w.order(w.at(-10), w.random_items())
    ln = w.rng.choice(o.lines)
    cn = w.refund(o, w.at(-9), [w.refund_line(o, ln, ln.quantity)], refund_type="Cancellation")
    w.lookalike(_la("cancellation_refund", i), "cancellation_refund",
                "a Cancellation credit note on an order line with no RMA (not a Return refund)",
                ["OVER_REFUND", "REFUND_WITHOUT_RECEIPT", "ORPHAN_REFUND"],
                {**w.ol_keys((o, ln)), "credit_note_number": cn})


def la_shared_parcel(w: World, i: int) -> None:
    o, rmas, wr = w.shared_parcel(w.at(-16), with_tracking=(i % 2 == 0))
    w.lookalike(_la("shared_parcel_two_rmas", i), "shared_parcel_two_rmas",
                "one parcel holding two RMA lines of the same order",
                ["ORPHAN_WMS_RETURN", "QUANTITY_MISMATCH", "STATUS_MISMATCH", "RESTOCK_MISMATCH",
                 "REFERENCE_MISMATCH"],
                {"order_reference": o.ref, "rma_references": [r.ref for r in rmas], "return_reference": wr.ref})


def la_rejected_ledger_lines(w: World, i: int) -> None:
    """The only invalid-JSON line and the only non-numeric amount of the whole ledger."""
    o, ln = w.case_order(w.at(-12))
    f = _clean_refunded(w, o, ln, 1, -12)
    t = w.at(-3)
    text = w._last_refund_line
    where = w._ledger_write(t, text[: len(text) // 2])  # a truncated redelivery
    w.expected_rejects.append({"file": where[0], "line": where[1], "reason": "invalid JSON"})
    bad = w.refund(o, w.at(-2.5), [w.refund_line(o, ln, 1, raw_gross="12,50abc")], rma=f.rma.ref, rejected=True)
    w.lookalike(_la("rejected_ledger_lines", i), "rejected_ledger_lines",
                "a truncated redelivery (invalid JSON) and a credit note with amount '12,50abc': rejects only",
                ORDER_LINE_MONEY, {**w.look_keys(f), "credit_note_numbers": [f.refunds[0], bad]})



# --------------------------------------------------------------------------- real shops' shapes
# reconciliation.md "As of T, precisely": option variants, credit-note versions, grades as of T,
# unmapped and alternative status names, typed models, abandoned checkouts, exact decimals.

def _variant_order(w: World, t: int, qty_s: int = 1, qty_m: int = 1) -> tuple[Order, Line, Line]:
    """An EUR order holding two rows of one SKU (size S, and size M with a +2.00 price modifier, so
    the blended unit gross stays in whole cents) and at most one other product."""
    p = w.pick_products(1)[0]
    items = w.random_items([(p, qty_s), (p, qty_m, Decimal("2.00"))], extra=w.rng.choice([0, 1]), exclude=(p,))
    o = w.order(t, items, currency="EUR")
    s, m = sorted((ln for ln in o.lines if ln.product is p), key=lambda ln: ln.order_product_id)
    return o, s, m


def case_refund_currency_mismatch(w: World, i: int) -> None:
    sid, v = _sid("REFUND_CURRENCY_MISMATCH", i), i % 2
    if v == 0:
        # EUR order, return received and refunded in EUR; a second Return credit note for the same
        # unit in USD (the payment page's currency). The USD line is left out of every other
        # order-line rule (no DUPLICATE_REFUND, no REFUND_WITHOUT_RECEIPT): fires only this rule.
        o, ln = w.case_order(w.at(-16), currency="EUR")
        f = _clean_refunded(w, o, ln, 1, -16)
        amount = money(f.ug * CURRENCIES["USD"])
        cn = w.refund(o, w.at(-5), [w.refund_line(o, ln, amount=amount)], rma=f.rma.ref, currency="USD")
    else:
        # A USD order nobody returned; a Return credit note in GBP on one of its lines (no RMA). The
        # line is left out of OVER_REFUND / REFUND_WITHOUT_RECEIPT: fires only this rule.
        o = w.order(w.at(-20), w.random_items(), currency="USD")
        ln = w.rng.choice(o.lines)
        amount = money(o.ug(ln) / CURRENCIES["USD"] * CURRENCIES["GBP"])
        cn = w.refund(o, w.at(-6), [w.refund_line(o, ln, amount=amount)], rma=None, currency="GBP")
    w.expect(sid, "REFUND_CURRENCY_MISMATCH", {"refund_reference": cn, "order_line_reference": str(ln.order_product_id)},
             amount, note=f"order in {o.currency}, credit note {cn} in {'USD' if v == 0 else 'GBP'}")


def case_variant_duplicate_refund(w: World, i: int) -> None:
    # Option variants: rows S (gross g) and M (g + 2.00) of one SKU; the customer returns 1 unit (RMA
    # of qty 1), received Undamaged; two credit notes refund it, one naming row M and one row S.
    # One order line (order, SKU) "S,M", unit gross (2g + 2) / 2 = g + 1. Refunded 2g + 2 = 2 units.
    # Fires DUPLICATE_REFUND (2g + 2 - (g + 1)) and REFUND_WITHOUT_RECEIPT (2 refunded, 1 received).
    sid = _sid("VARIANT_DUPLICATE_REFUND", i)
    o, s, m = _variant_order(w, w.at(-24))
    f = _clean_refunded(w, o, m, 1, -18)
    cn2 = w.refund(o, w.at(-6), [w.refund_line(o, s, 1)], rma=f.rma.ref)
    ug = o.blended_ug([s, m])
    refunded = money(o.ug(m)) + money(o.ug(s))
    keys = w.ol_keys(f)
    assert keys["order_line_reference"] == f"{s.order_product_id},{m.order_product_id}"
    w.expect(sid, "DUPLICATE_REFUND", keys, refunded - ug, note=f"variant rows, {f.refunds[0]} (M) and {cn2} (S)")
    w.expect(sid, "REFUND_WITHOUT_RECEIPT", keys, ug, 1, note="2 units refunded on the variant line, 1 received")


def case_abandoned_checkout_refund(w: World, i: int) -> None:
    # An abandoned checkout (order_status_id 0: not an order) and a money-out credit note naming
    # one of its lines: ORPHAN_REFUND (the storefront has no such order line). Fires only that.
    sid = _sid("ABANDONED_CHECKOUT_REFUND", i)
    o = w.order(w.at(-12), w.random_items(extra=0), status=0)
    ln = o.lines[0]
    amount = money(o.ug(ln))
    cn = w.refund(o, w.at(-4), [w.refund_line(o, ln, 1)], rma=None, refund_type="Return" if i % 2 else "Appeasement")
    w.expect(sid, "ORPHAN_REFUND", {"refund_reference": cn, "order_line_reference": str(ln.order_product_id)},
             amount, note=f"order {o.ref} is an abandoned checkout (status 0)")


def la_refund_currency_absent(w: World, i: int) -> None:
    o, ln = w.case_order(w.at(-15), currency=("USD", "GBP")[i % 2])
    f = _clean_refunded(w, o, ln, 1, -15, refund_currency=None)
    w.lookalike(_la("refund_currency_absent", i), "refund_currency_absent",
                f"a {o.currency} order refunded by a credit note without currency (= the order's)",
                ["REFUND_CURRENCY_MISMATCH", "OVER_REFUND"],
                {**w.look_keys(f), "refund_reference": f.refunds[0]})


def la_option_variants(w: World, i: int) -> None:
    # Rows S and M of one SKU (different prices); one RMA for both units, one WMS return, both
    # Undamaged; two credit notes, one per row, each exactly its row's gross: exactly what was
    # asked, on the one order line (order, SKU).
    o, s, m = _variant_order(w, w.at(-22))
    f = _clean_refunded(w, o, s, 2, -16, refund=None)
    cns = [w.refund(o, w.at(-8) + k * HOUR, [w.refund_line(o, ln, 1)], rma=f.rma.ref) for k, ln in enumerate((s, m))]
    w.lookalike(_la("option_variants_refunded_per_row", i), "option_variants_refunded_per_row",
                "two rows of one SKU (sizes S and M), one RMA of 2 units, one credit note per row",
                ORDER_LINE_MONEY + ["RECEIVED_NOT_REFUNDED", "QUANTITY_MISMATCH", "REFUND_FOR_DAMAGED_GOODS"],
                {**w.look_keys(f), "credit_note_numbers": cns})


def la_released_after_T(w: World, i: int) -> None:
    # A credit note PENDING since 2 days before T, RELEASED only after T (a later version of the same
    # note): not money out at T.
    if i % 2 == 0:  # with an RMA whose parcel has not arrived (REFUND_WITHOUT_RECEIPT if counted)
        o, ln = w.case_order(w.at(-7))
        f = w.flow(o, ln, 1, created=w.at(-6), auth=w.at(-5.5), mode="preauth", refund=None)
        rma, keys = f.rma.ref, w.look_keys(f)
    else:  # no RMA at all (OVER_REFUND if counted)
        o = w.order(w.at(-10), w.random_items())
        ln = w.rng.choice(o.lines)
        rma, keys = None, w.ol_keys((o, ln))
    t0 = w.at(-2)
    lines = [w.refund_line(o, ln, 1)]
    cn = w.refund(o, t0, lines, rma=rma, status="PENDING")
    w.refund(o, t0, lines, rma=rma, status="RELEASED", cn=cn, status_at=w.T + 2 * HOUR)
    w.lookalike(_la("credit_note_released_after_T", i), "credit_note_released_after_T",
                f"{cn} PENDING before T, RELEASED only after T (a later version)", ORDER_LINE_MONEY,
                {**keys, "credit_note_numbers": [cn]})


def la_stale_pending_redelivered(w: World, i: int) -> None:
    # Credit note created (PENDING) and RELEASED before T; the stale PENDING version (older
    # status.date) is redelivered 2 days later, in a later file: still money out at T.
    o, ln = w.case_order(w.at(-16))
    f = _clean_refunded(w, o, ln, 1, -16, refund=None)
    c0 = w.at(-6)
    c1 = c0 + w.u(2 * HOUR, 20 * HOUR)
    lines = [w.refund_line(o, ln, 1)]
    cn = w.refund(o, c0, lines, rma=f.rma.ref, status="RELEASED", status_at=c1)
    w.refund(o, c0, lines, rma=f.rma.ref, status="PENDING", cn=cn, status_at=c0, file_at=c1 + 2 * DAY)
    w.lookalike(_la("stale_pending_redelivered", i), "stale_pending_redelivered",
                f"{cn} RELEASED, then its older PENDING version redelivered in a later file",
                ["RECEIVED_NOT_REFUNDED"] + ORDER_LINE_MONEY, {**w.look_keys(f), "credit_note_numbers": [cn]})


def la_damaged_graded_after_T(w: World, i: int) -> None:
    # Arrived 2 days before T, still being processed; the unit graded Damaged 2 hours after T (the
    # record fetched at now carries it): WaitingToBeProcessed at T. Refunded 1 day before T.
    o, ln = w.case_order(w.at(-9))
    f = w.flow(o, ln, 1, created=w.at(-9), auth=w.at(-8.5), arrive=w.at(-2), grades="D",
               processed=[w.T + 2 * HOUR], complete=None, refund=1, refund_at=w.at(-1), close=None)
    w.lookalike(_la("damaged_graded_after_T", i), "damaged_graded_after_T",
                "unit graded Damaged after T on a return not completed yet, refunded before T",
                ["REFUND_FOR_DAMAGED_GOODS", "REFUND_WITHOUT_RECEIPT"], w.look_keys(f))


def la_rma_on_hold(w: World, i: int) -> None:
    # An RMA put "On Hold" (a status name the default map does not know) after its pre-authorised
    # WMS return completed and the refund was paid: it still matches and counts as requested.
    o, ln = w.case_order(w.at(-16))
    f = _clean_refunded(w, o, ln, 1, -16, mode="preauth", close_status=ON_HOLD)
    w.lookalike(_la("rma_status_unmapped_on_hold", i), "rma_status_unmapped_on_hold",
                "RMA status 'On Hold' (unmapped): matched by reference, refund as requested",
                ["ORPHAN_WMS_RETURN", "OVER_REFUND", "STATUS_MISMATCH", "RMA_NOT_RECEIVED", "RECEIVED_NOT_REFUNDED"],
                w.look_keys(f))


def la_tracking_hash_colon(w: World, i: int) -> None:
    # "Tracking #: JD0146000038xx": an unannounced parcel tied to the RMA by that number.
    o, ln = w.case_order(w.at(-15))
    num = f"JD01460000{3800 + i:04d}"
    f = _clean_refunded(w, o, ln, 1, -15, mode="tracking", tracking="later", tracking_at=w.at(-15) + 14 * HOUR,
                        trk=(num, "DHL"), trk_comment="Tracking #: {}")
    w.lookalike(_la("tracking_hash_colon", i), "unannounced_by_tracking",
                f"tracking pasted as 'Tracking #: {num}'; the unannounced WMS return carries it",
                ["ORPHAN_WMS_RETURN", "REFERENCE_MISMATCH"], {**w.look_keys(f), "tracking_id": f.tracking})


def la_rma_typed_model(w: World, i: int) -> None:
    # The customer typed the model on the return form: product_id 0, " sku-00042 " (lower case,
    # spaces). The RMA belongs to its order line all the same: its refund is as requested.
    o, ln = w.case_order(w.at(-15))
    f = _clean_refunded(w, o, ln, 1, -15, mode="preauth", rma_product_id=0, rma_model=f" {ln.sku.lower()} ")
    w.lookalike(_la("rma_model_typed_product_0", i), "rma_model_typed_product_0",
                f"RMA with product_id 0 and model ' {ln.sku.lower()} '", ORDER_LINE_MONEY + ["ORPHAN_WMS_RETURN"],
                w.look_keys(f))


def la_rma_canceled_spelling(w: World, i: int) -> None:
    # Order line of 2: a first RMA for both units "Canceled" (OpenCart's spelling) a day later, then
    # an RMA for 1 unit, received and refunded: requested 1 (the canceled one does not count).
    o, ln = w.case_order(w.at(-24), qty=2)
    c = w.at(-20)
    a = w.flow(o, ln, 2, created=c, auth=c + 3 * HOUR, mode=None, tracking=None, refund=None,
               close=c + DAY, close_status=CANCELED_US, action=A_WAITING)
    b = _clean_refunded(w, o, ln, 1, -17, mode="preauth")
    w.lookalike(_la("rma_canceled_spelling", i), "rma_canceled_spelling",
                "an RMA 'Canceled' (not requested) beside a received and refunded RMA of 1 unit",
                ["QUANTITY_MISMATCH", "RMA_NOT_RECEIVED", "STATUS_MISMATCH", "OVER_REFUND"],
                {**w.look_keys(b), "rma_references": [a.rma.ref, b.rma.ref]})


def la_three_decimal_amount(w: World, i: int) -> None:
    # A credit note of unit gross + 0.005 written with 3 decimals ("59.495" for 59.49): within
    # the 0.01 tolerance, compared exactly.
    o, ln = w.case_order(w.at(-15), currency="EUR")
    f = _clean_refunded(w, o, ln, 1, -15, refund=None)
    raw = str(money(f.ug) + Decimal("0.005"))
    cn = w.refund(o, w.at(-8), [w.refund_line(o, ln, 1, raw_gross=raw)], rma=f.rma.ref)
    w.lookalike(_la("refund_three_decimals", i), "refund_three_decimals",
                f"{cn}: cost_gross {raw} for a unit gross of {money(f.ug)}", ["OVER_REFUND", "DUPLICATE_REFUND"],
                {**w.look_keys(f), "credit_note_numbers": [cn]})


CASES: list[tuple[str, Callable[[World, int], None]]] = [
    ("DUPLICATE_REFUND", case_duplicate_refund),
    ("OVER_REFUND", case_over_refund),
    ("REFUND_WITHOUT_RECEIPT", case_refund_without_receipt),
    ("REFUND_FOR_DAMAGED_GOODS", case_refund_for_damaged),
    ("RECEIVED_NOT_REFUNDED", case_received_not_refunded),
    ("QUANTITY_MISMATCH", case_quantity_mismatch),
    ("RMA_NOT_RECEIVED", case_rma_not_received),
    ("STATUS_MISMATCH", case_status_mismatch),
    ("ORPHAN_WMS_RETURN", case_orphan_wms_return),
    ("REFERENCE_MISMATCH", case_reference_mismatch),
    ("RESTOCK_MISMATCH", case_restock_mismatch),
    ("ORPHAN_REFUND", case_orphan_refund),
    ("UNSYNCED_STOCK_ADJUSTMENT", case_unsynced_stock),
    ("REFUND_CURRENCY_MISMATCH", case_refund_currency_mismatch),
    ("DUPLICATE_REFUND", case_variant_duplicate_refund),
    ("ORPHAN_REFUND", case_abandoned_checkout_refund),
]

LOOKALIKES: list[tuple[str, Callable[[World, int], None], int | None]] = [
    ("redelivered_refund", la_redelivered_refund, None),
    ("partial_returns_two_credit_notes", la_partial_returns, None),
    ("refund_within_tolerance", la_refund_within_tolerance, None),
    ("appeasement_on_top", la_appeasement_on_top, None),
    ("late_parcel_refunded_before_arrival", la_refund_before_arrival, None),
    ("late_parcel_authorised_25d", la_late_parcel_25d, None),
    ("authorised_20d_not_arrived", la_authorised_20d, None),
    ("damaged_waiting_at_T_refunded", la_damaged_waiting, None),
    ("replacement_instead_of_refund", la_replacement, None),
    ("completed_1d_not_refunded", la_completed_1d_not_refunded, None),
    ("wms_completed_1d_rma_awaiting", la_wms_completed_1d_rma_awaiting, None),
    ("completed_12h_not_restocked", la_completed_12h_not_restocked, None),
    ("shipping_refund", la_shipping_refund, None),
    ("unannounced_by_tracking", la_unannounced_tracking, None),
    ("unannounced_by_order_sku", la_unannounced_order_sku, None),
    ("tracking_corrected", la_tracking_corrected, None),
    ("stock_gap_old_restock", la_stock_gap_old_restock, None),
    ("stock_gap_cycle_count", la_stock_gap_cycle_count, None),
    ("refund_after_T", la_refund_after_T, None),
    ("rma_completed_after_T", la_rma_completed_after_T, None),
    ("refund_not_money_out", la_refund_not_money_out, None),
    ("cancellation_refund", la_cancellation_refund, None),
    ("shared_parcel_two_rmas", la_shared_parcel, None),
    ("rejected_ledger_lines", la_rejected_ledger_lines, 1),
    ("refund_currency_absent", la_refund_currency_absent, None),
    ("option_variants_refunded_per_row", la_option_variants, None),
    ("credit_note_released_after_T", la_released_after_T, None),
    ("stale_pending_redelivered", la_stale_pending_redelivered, None),
    ("damaged_graded_after_T", la_damaged_graded_after_T, None),
    ("rma_status_unmapped_on_hold", la_rma_on_hold, None),
    ("tracking_hash_colon", la_tracking_hash_colon, None),
    ("rma_model_typed_product_0", la_rma_typed_model, None),
    ("rma_canceled_spelling", la_rma_canceled_spelling, None),
    ("refund_three_decimals", la_three_decimal_amount, None),
]

# the payment provider's cases and look-alikes live beside the provider's side of the world
from pipelines.demo.world_payments import PAYMENT_CASES, PAYMENT_LOOKALIKES  # noqa: E402

CASES += PAYMENT_CASES
LOOKALIKES += PAYMENT_LOOKALIKES


# --------------------------------------------------------------------------- driver

def _build(out_dir: Path, seed: int, n_returns: int, end_date: date,
           progress: Callable[[str], None] | None) -> tuple[dict, World]:
    if n_returns < 1:
        raise ValueError("n_returns must be >= 1")
    w = World(out_dir, seed, n_returns, end_date, progress)
    rng = w.rng
    n_bg_products = max(40, min(4000, n_returns // 25))
    for _ in range(n_bg_products):
        w.product()
    per_rule = 3 + n_returns // 200
    per_lookalike = max(2, per_rule // 2)
    plan: list[tuple[Callable[[World, int], None], int]] = []
    for _, fn in CASES:
        plan += [(fn, i) for i in range(per_rule)]
    for _, fn, cap in LOOKALIKES:
        plan += [(fn, i) for i in range(per_lookalike if cap is None else min(cap, per_lookalike))]
    rng.shuffle(plan)
    # scenarios are spread over the first 3/4 of the generation, between background stories
    positions = sorted(0.75 * rng.random() for _ in plan)
    k = 0
    reported = 0

    def run_scenarios(upto: float) -> None:
        nonlocal k
        while k < len(plan) and positions[k] <= upto:
            fn, i = plan[k]
            w._scenario_active = True
            fn(w, i)
            w._scenario_active = False
            k += 1

    if progress:
        progress(f"world: generating {n_returns} returns (seed {seed}, business date {end_date})")
    while True:
        run_scenarios(w.rma_total / n_returns)
        if n_returns - w.rma_total < 2 * (len(plan) - k) + 2:
            # a scenario makes at most 2 RMAs: flush them while there is room, so that the total
            # number of RMAs is exactly n_returns (unless the scenarios alone need more)
            run_scenarios(2.0)
        if w.rma_total >= n_returns:
            break
        w.background_group(n_returns - w.rma_total)
        if progress and w.rma_total * 10 // n_returns > reported and w.rma_total < n_returns:
            reported = w.rma_total * 10 // n_returns
            progress(f"world: {reported * 10}% ({w.rma_total}/{n_returns} returns)")
    run_scenarios(2.0)
    manifest = w.finish()
    if progress:
        progress(f"world: done, {w.counts['oc_return']} returns, {w.n_cases} expected discrepancies "
                 f"-> {w.out}")
    return manifest, w


def generate_world(out_dir: Path, *, seed: int = 7, n_returns: int = 300, end_date: date,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Write the demo world into ``out_dir`` and return its manifest (see the module docstring)."""
    manifest, _ = _build(Path(out_dir), seed, n_returns, end_date, progress)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.demo.world",
                                 description="Generate the deterministic returns-recon demo world.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--returns", type=int, default=300, dest="n_returns")
    ap.add_argument("--end-date", required=True, type=date.fromisoformat, help="business date D (YYYY-MM-DD)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    m = generate_world(args.out_dir, seed=args.seed, n_returns=args.n_returns, end_date=args.end_date,
                       progress=progress)
    print(json.dumps({"out_dir": str(args.out_dir), "as_of": m["as_of"], "counts": m["counts"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
