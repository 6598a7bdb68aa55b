"""Seeded generator of small randomized worlds for the differential test.

``generate(out_dir, seed)`` writes, in the formats of pipelines/demo/world.py (the OpenCart SQLite
``storefront.sqlite`` with world.py's SCHEMA/COLUMNS, ``wms/*.jsonl`` in OPLOG API shape,
``ledger/*.jsonl`` OMS JSON-RPC lines and ``manifest.json``), a world of 5-15 orders over a few
SKUs for business date D = 2026-03-31 (T = 2026-04-01T00:00:00Z). The sources are a snapshot
taken at NOW = T + 2 days: records and status changes in (T, NOW] exist and must be ignored.

The content is random but deterministic per seed (one ``random.Random(seed)``); every shape the
brief lists is drawn with some probability (see ``Gen``): option variants, refunds released after
T, out-of-order and identical redeliveries, late unit grades, 0-6 fractional digits, unmapped
status names, corrected tracking comments, foreign-currency refunds, 3-decimal amounts, typed
models with product_id 0, the "Canceled" order status, abandoned checkouts, records that fail
validation, and every rule's positive and boundary cases (exactly T, exactly T - N days, exactly
the tolerance).

Cases the contract leaves open are not generated (each is marked "AMBIGUOUS: avoided" below).
"""
from __future__ import annotations

import json
import random
import sqlite3
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from pipelines.demo.world import COLUMNS, SCHEMA

BUSINESS_DATE = date(2026, 3, 31)
US = 1_000_000
SEC = US
MIN = 60 * US
HOUR = 60 * MIN
DAY = 24 * HOUR
EPOCH = datetime(1970, 1, 1)
T = int((datetime(2026, 4, 1) - EPOCH).total_seconds()) * US
NOW = T + 2 * DAY
TENANT_ID = "diff-tenant"
TOKEN = "diff-token-5d1e"
PAYMENTS_KEY = "sk_test_diff_8a3f"
REFUND_METHOD = "magento.postsales.refund_management.updated"

CURRENCIES = {"EUR": "1.00000000", "USD": "1.08500000", "GBP": "0.86120000", "CHF": "0.95814567"}
MODELS = ["TS-RED", "TS-BLUE", "MUG-01", "CAP-XL", "SOCK-3P", "BAG-22", "JKT-M", "SHOE-42"]

# return statuses (language 1): the default map's names, an alias spelled differently, and an
# unmapped name
ST_PENDING, ST_AWAITING, ST_COMPLETE, ST_REJECTED, ST_CANCELLED, ST_CANCELED, ST_ONHOLD, ST_AWAIT2 = \
    1, 2, 3, 4, 5, 6, 7, 8
RETURN_STATUSES = [(1, "Pending"), (2, "Awaiting Products"), (3, "Complete"), (4, "Rejected"),
                   (5, "Cancelled"), (6, "Canceled"), (7, "On Hold"), (8, " AWAITING products ")]
A_REFUNDED, A_CREDIT, A_REPLACEMENT, A_WAITING, A_EXCHANGE = 14, 12, 11, 13, 15
RETURN_ACTIONS = [(12, "Credit Issued"), (14, "Refunded"), (11, "Replacement Sent"), (13, "Waiting for return"),
                  (15, "Exchange")]
RETURN_REASONS = [(1, "Dead On Arrival"), (2, "Received Wrong Item"), (3, "Order Error")]
ORDER_STATUSES = [(1, "Pending"), (2, "Processing"), (5, "Complete"), (7, "Canceled")]


def q4(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def fmt_oc(us: int) -> str:
    return dt(us - us % SEC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_iso(us: int, offset_hours: int = 0) -> str:
    d = dt(us - us % SEC) + timedelta(hours=offset_hours)
    sign = "+" if offset_hours >= 0 else "-"
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f"{sign}{abs(offset_hours):02d}:00"


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.seed = seed
        self.ids = {"order": 100, "op": 1000, "product": 0, "return": 0, "history": 0, "cn": 0, "adj": 0,
                    "unannounced": 5000, "trk": 0, "msg": 0}
        self.rows: dict[str, list[tuple]] = {t: [] for t in SCHEMA}
        self.products: dict[str, list[dict]] = {}   # model -> product rows
        self.orders: list[dict] = []
        self.wms: list[dict] = []
        self.wms_meta: list[dict] = []
        self.adjustments: list[dict] = []
        self.ledger: list[tuple[int, int, str]] = []  # (publication time, sequence, text)
        self.rejected_returns: set[str] = set()
        self.notes: list[dict] = []   # every credit note published, for the payment provider (payments_gen.py)
        self.digits = 6   # fractional digits of WMS timestamps: drawn per record (keeps each record's order)

    # ------------------------------------------------------------------ helpers
    def nid(self, k: str) -> int:
        self.ids[k] += 1
        return self.ids[k]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def at(self, lo_days: float, hi_days: float) -> int:
        """A time T + uniform(lo, hi) days, on a whole second."""
        us = T + int(self.r.uniform(lo_days, hi_days) * DAY)
        return us - us % SEC

    def wts(self, us: int | None) -> str | None:
        """WMS timestamp with 0 to 6 fractional digits (truncating the instant to them)."""
        if us is None:
            return None
        digits = self.digits
        d = dt(us)
        frac = f"{d.microsecond:06d}"[:digits]
        return d.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if digits else "") + "Z"

    def wts_exact(self, us: int | None) -> str | None:
        if us is None:
            return None
        d = dt(us)
        if d.microsecond == 0 and self.chance(0.5):
            return d.strftime("%Y-%m-%dT%H:%M:%S") + self.r.choice(["Z", ".0Z", ".000Z", ".000000Z"])
        return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{d.microsecond:06d}Z"

    def tracking_number(self) -> str:
        n = self.nid("trk")
        return self.r.choice([f"1Z{self.seed % 1000:03d}X{n:08d}", f"JJD{self.seed % 10000:04d}{n:06d}",
                              f"{self.seed % 100000:05d}{n:07d}"])

    def tracking_comment(self, num: str) -> str:
        return self.r.choice([f"Tracking number: {num}", f"tracking no. {num}", f"Tracking #: {num}",
                              f"Label sent. TRACKING ID: {num}", f"customer sent tracking # {num}",
                              f"Tracking: 00000000 typo, Tracking number: {num}"])

    # ------------------------------------------------------------------ catalogue and orders
    def make_products(self) -> None:
        for model in self.r.sample(MODELS, self.r.randint(3, 6)):
            self.add_product(model)
            if self.chance(0.08):  # the product re-created under the same model
                self.add_product(model)

    def add_product(self, model: str) -> dict:
        gross_cents = self.r.choice([999, 1000, 1250, 1999, 2490, 3333, 4999, 10800, 12.5 * 100])
        vat = self.r.choice([Decimal(19), Decimal(7), Decimal(0)])
        price = (Decimal(int(gross_cents)) / 100 * 100 / (100 + vat)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        if self.chance(0.3):
            price += Decimal(self.r.randint(1, 99)) / 10000  # prices that are not whole cents
        tax = (price * vat / 100).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        p = {"product_id": self.nid("product"), "model": model, "price": price, "tax": tax,
             "quantity": self.r.randint(0, 40)}
        self.products.setdefault(model, []).append(p)
        self.rows["oc_product"].append((p["product_id"], model, p["quantity"], q4(price), 1, 1,
                                        fmt_oc(self.at(-90, -1))))
        return p

    def make_order(self, abandoned: bool = False) -> dict:
        r = self.r
        currency = r.choice(["EUR", "EUR", "USD", "GBP", "CHF"])
        status = 0 if abandoned else r.choice([5, 5, 5, 2, 1, 7])
        o = {"order_id": self.nid("order"), "currency": currency, "cv": Decimal(CURRENCIES[currency]),
             "status": status, "rows": [], "created": self.at(-60, -45)}
        models = r.sample(sorted(self.products), min(len(self.products), r.choice([1, 1, 2, 2, 3])))
        for model in models:
            p = self.products[model][0]
            self.add_row(o, p, r.choice([1, 1, 2, 3]))
            if self.chance(0.2):  # option variant: a second row of the same SKU, maybe another price
                modifier = Decimal(r.choice([0, 0, 2, 5])) + Decimal(r.choice([0, 25, 5])) / 100
                self.add_row(o, p, r.choice([1, 2]), price=p["price"] + modifier)
        total = sum((row["price"] + row["tax"]) * row["quantity"] for row in o["rows"])
        self.rows["oc_order"].append((o["order_id"], 0, 1000 + o["order_id"], f"c{o['order_id']}@example.com",
                                      q4(total), status, currency, CURRENCIES[currency], fmt_oc(o["created"]),
                                      fmt_oc(o["created"] + DAY)))
        self.orders.append(o)
        return o

    def add_row(self, o: dict, p: dict, qty: int, price: Decimal | None = None) -> None:
        price = p["price"] if price is None else price
        tax = p["tax"] if price == p["price"] else (price * Decimal("0.19")).quantize(Decimal("0.0001"))
        model = p["model"] + (" " if self.chance(0.05) else "")  # surrounding spaces are trimmed
        row = {"order_product_id": self.nid("op"), "model": p["model"], "quantity": qty, "price": price,
               "tax": tax, "product": p}
        o["rows"].append(row)
        self.rows["oc_order_product"].append((row["order_product_id"], o["order_id"], p["product_id"],
                                              f"Product {p['model']}", model, qty, q4(price), q4(price * qty),
                                              q4(tax)))

    @staticmethod
    def lines_of(o: dict) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for row in o["rows"]:
            out.setdefault(row["model"], []).append(row)
        return out

    @staticmethod
    def unit_gross(o: dict, rows: list[dict]) -> Decimal:
        qty = sum(x["quantity"] for x in rows)
        g = sum((x["price"] + x["tax"]) * o["cv"] * x["quantity"] for x in rows)
        return (g / qty).quantize(Decimal("0.00000001"), ROUND_HALF_UP)

    # ------------------------------------------------------------------ RMAs
    def make_rma(self, o: dict, model: str, rows: list[dict], *, invalid: str | None = None,
                 force_tracking: str | None = None) -> dict:
        r = self.r
        ordered = sum(x["quantity"] for x in rows)
        rid = self.nid("return")
        qty = r.choice([ordered, ordered, 1, max(1, ordered - 1)]) if self.chance(0.95) else ordered + 1
        if invalid == "quantity":
            qty = 0
        created = self.at(-45, -0.2) if self.chance(0.93) else (T if self.chance(0.4) else self.at(0.01, 1.5))
        if invalid or force_tracking:
            created = self.at(-45, -0.2)  # AMBIGUOUS: avoided (is a record from after T a reject at T?)
        typed = model
        product_id = rows[0]["product"]["product_id"]
        x = r.random()
        if x < 0.12:
            typed, product_id = model.lower(), 0
        elif x < 0.2:
            typed = f" {model} "
        elif x < 0.25:
            product_id = 9000 + rid  # a product re-created since: the RMA still belongs to (order, model)
        if invalid == "model":
            typed, product_id = "NO-SUCH-SKU", 0
        history: list[list] = []
        has_history = self.chance(0.92)
        rma = {"return_id": rid, "ref": f"RMA-{rid}", "order": o, "model": model, "rows": rows, "qty": qty,
               "created": created, "tracking": None, "auth": None, "history": history}
        t = created
        if has_history:
            history.append([t, ST_PENDING, None if self.chance(0.2) else ""])
            if self.chance(0.85) or force_tracking:
                t = t + int(r.uniform(0.01, 2.5) * DAY)
                t -= t % SEC
                if self.chance(0.1):  # authorised exactly 21 days before T (not "more than")
                    t = T - 21 * DAY
                auth_status = ST_AWAIT2 if self.chance(0.1) else ST_AWAITING
                comment = "Return authorised."
                if force_tracking or self.chance(0.55):
                    rma["tracking"] = force_tracking or self.tracking_number()
                    comment += " " + self.tracking_comment(rma["tracking"])
                history.append([max(t, history[-1][0]), auth_status, comment])
                rma["auth"] = t
                if not force_tracking and self.chance(0.25):
                    # a tracking number pasted later, maybe corrected, maybe (again) after T
                    for _ in range(r.choice([1, 2])):
                        t2 = t + int(r.uniform(0.02, 3) * DAY)
                        t2 -= t2 % SEC
                        num = self.tracking_number()
                        history.append([t2, history[-1][1], "Correction - " + self.tracking_comment(num)])
                        if t2 <= T:
                            rma["tracking"] = num
                        t = t2
                if self.chance(0.1):
                    history.append([t + HOUR, ST_AWAITING, "tracking information will follow"])
                    t += HOUR
                if self.chance(0.15):  # an unmapped status in between: breaks the AUTHORIZED run
                    hold = t + int(r.uniform(0.5, 3) * DAY)
                    t = hold + int(r.uniform(1, 20) * DAY)
                    t -= t % SEC
                    history.append([hold - hold % SEC, ST_ONHOLD, "Waiting for the customer."])
                    history.append([t, r.choice([ST_AWAITING, ST_AWAIT2]), "Back on track."])
            x = r.random()
            close = None
            if x < 0.35:
                close = ST_COMPLETE
            elif x < 0.42:
                close = ST_REJECTED
            elif x < 0.5:
                close = r.choice([ST_CANCELLED, ST_CANCELED])
            elif x < 0.56:
                close = ST_ONHOLD
            elif x < 0.6:
                close = ST_PENDING
            if close is not None:
                tc = max(t, created) + int(r.uniform(0.05, 25) * DAY)
                tc -= tc % SEC
                if self.chance(0.05):
                    tc = T
                history.append([tc, close, "Closed." if close != ST_ONHOLD else "On hold."])
            if self.chance(0.05) and len(history) >= 2:  # two rows at the same second
                history[-1][0] = history[-2][0]
            if len(history) >= 2 and self.chance(0.05):
                history.pop(0)  # no row at date_added: before the first row, the RMA's own status applies
            history[:] = [h for h in history if h[0] <= NOW]
            own_status = history[-1][1] if history else ST_PENDING
        else:
            # 99: an id the status table does not know (status UNKNOWN)
            own_status = r.choice([ST_PENDING, ST_AWAITING, ST_COMPLETE, ST_REJECTED, ST_ONHOLD, ST_AWAIT2, 99])
        action = r.choices([A_REFUNDED, A_WAITING, A_CREDIT, A_REPLACEMENT, A_EXCHANGE, 0, None, 99],
                           weights=[45, 20, 8, 8, 5, 10, 4, 2])[0]
        rma.update(action=action, own_status=own_status)
        for h in history:
            self.rows["oc_return_history"].append((self.nid("history"), rid, h[1], 1, h[2], fmt_oc(h[0])))
        if invalid == "history_date":
            self.rows["oc_return_history"].append((self.nid("history"), rid, ST_AWAITING, 0, "",
                                                   r.choice(["0000-00-00 00:00:00", None])))
        date_added = fmt_oc(created)
        self.rows["oc_return"].append((rid, o["order_id"], product_id, 1000 + o["order_id"], "Ann", "Bee",
                                       "a@example.com", "+49 1", f"Product {model}", typed, qty, 0,
                                       r.randint(1, 3), action, own_status, "", fmt_oc(o["created"])[:10],
                                       date_added, date_added))
        return rma

    # ------------------------------------------------------------------ WMS
    def make_wms(self, order_ref: str, ref: str | None, tracking: str | None, created: int,
                 arrive: int | None, complete: int | None, units: list[tuple[str, str]],
                 broken: str | None = None) -> dict:
        """units: (sku, final grade U/D/M/W). Times are absolute; the record is the NOW snapshot."""
        r = self.r
        ref = ref or f"Return-{self.nid('unannounced')}"
        if created > NOW:
            return None
        self.digits = r.choice([0, 0, 1, 2, 3, 3, 4, 5, 6, 6])
        if arrive is not None and arrive < created:
            arrive = created
        if complete is not None and (arrive is None or complete < arrive):
            complete = None
        arrived = arrive if arrive is not None and arrive <= NOW else None
        completed = complete if arrived is not None and complete is not None and complete <= NOW else None
        items = []
        stamps = [created]
        for n, (sku, g) in enumerate(units, 1):
            processed = None
            if g != "W" and arrived is not None:
                end = completed if completed is not None else min(NOW, arrived + 3 * DAY)
                processed = arrived + int(r.uniform(0, 1) * (end - arrived))
                if completed is not None and self.chance(0.15):
                    processed = completed
                if g == "M" and processed > T:
                    g = "U"  # AMBIGUOUS: avoided (a unit Missing only after T)
                if completed is None and processed > NOW:
                    processed = None
            if processed is None:
                items.append({"lineItemReferenceNumber": f"{ref}-{n}", "sku": sku, "processedAt": None,
                              "state": "WaitingToBeProcessed", "damagedState": None, "serialNumber": None})
                continue
            stamps.append(processed)
            state = {"U": "Undamaged", "D": "Damaged", "M": "Missing"}[g]
            items.append({"lineItemReferenceNumber": f"{ref}-{n}", "sku": sku, "processedAt": self.wts(processed),
                          "state": state, "damagedState": "WaitingInWarehouse" if g == "D" else None,
                          "serialNumber": None})
        stamps += [x for x in (arrived, completed) if x is not None]
        state = "Completed" if completed is not None else "ArrivedToWarehouse" if arrived is not None \
            else "ReturnCreated"
        rec = {"source": "WMS", "returnReferenceNumber": ref, "salesOrderChannel": "OpenCart",
               "salesOrderReferenceNumber": order_ref, "notes": None, "state": state, "trackingId": tracking,
               "cargoCarrier": "UPS" if tracking else None, "createdAt": self.wts(created),
               "updatedAt": self.wts_exact(max(stamps)),
               "arrivedToWarehouseAt": self.wts_exact(arrived) if self.chance(0.3) else self.wts(arrived),
               "completedAt": self.wts_exact(completed) if self.chance(0.3) else self.wts(completed),
               "courierRequest": "No", "tag": None, "lineItems": items}
        if created > T:
            broken = None  # AMBIGUOUS: avoided (is a record from after T a reject at T?)
        if broken == "timestamp":
            rec[r.choice(["arrivedToWarehouseAt", "createdAt"])] = r.choice(["2026-03-20T25:61:00Z", "yesterday",
                                                                              "20/03/2026 10:00"])
        elif broken == "state" and items:
            items[0]["state"] = r.choice(["Lost", "Refurbished"])
        elif broken == "record" and items:
            items[-1].pop("sku")
        if broken:
            self.rejected_returns.add(ref)
        self.wms.append(rec)
        meta = {"ref": ref, "order_ref": order_ref, "completed": completed, "arrived": arrived, "units": units,
                "items": items, "rec": rec, "broken": broken, "created": created}
        self.wms_meta.append(meta)
        return meta

    def restock(self, w: dict, product_of: dict[str, dict], how: str) -> None:
        """Adjustments tagged with the return for its SKUs: correct, missing, off by one, damaged put back."""
        if w["completed"] is None or w["broken"] or how == "missing":
            return
        r = self.r
        t = w["completed"] + int(r.uniform(0.01, 1.5) * DAY)
        if t > NOW:
            return
        lines = []
        for sku in sorted({u[0] for u in w["units"]}):
            und = sum(1 for it in w["items"] if it.get("sku") == sku and it["state"] == "Undamaged")
            dmg = sum(1 for it in w["items"] if it.get("sku") == sku and it["state"] == "Damaged")
            found, pq = und, 0
            if how == "quarantine":
                found, pq = und + dmg, dmg
            elif how == "off":
                found = max(0, und + r.choice([-1, 1]))
            elif how == "damaged_back":
                found = und + dmg
            if found or pq:
                lines.append((sku, found, 0, pq, 0))
        if lines:
            self.adjust(t, w["ref"], lines, "ReturnRestock")

    def adjust(self, t: int, tag: str | None, lines: list[tuple], ttype: str) -> None:
        r = self.r
        n = self.nid("adj")
        self.adjustments.append({
            "id": f"00000000-0000-4000-8000-{self.seed:06d}{n:06d}", "transactionNumber": f"SA-{self.seed}-{n}",
            "transactionType": ttype, "completedAt": self.wts(t), "tag": tag,
            "lineItems": [{"id": f"li-{n}-{k}", "productName": sku, "sku": sku, "lostAmount": lost,
                           "foundAmount": found, "putInQuarantineAmount": pq, "releaseFromQuarantineAmount": rq}
                          for k, (sku, found, lost, pq, rq) in enumerate(lines)]})
        del r

    # ------------------------------------------------------------------ ledger
    def payments(self, amount: str | None, code: str) -> list[dict]:
        """One payment, or (sometimes) the amount split over a refunded and a failed payment plus a refunded part."""
        if code == "REFUNDED" and amount is not None and self.chance(0.08):
            try:
                total = Decimal(amount)
            except ArithmeticError:
                return [self.payment(amount, code)]
            part = cents(total / 3)
            return [self.payment(f"{part:f}", "REFUNDED"), self.payment("5.00", "FAILED"),
                    self.payment(f"{total - part:f}", "REFUNDED")]
        return [self.payment(amount, code)]

    def payment(self, amount: str | None, code: str = "REFUNDED") -> dict:
        details = {"cost_net": "0", "cost_vat": "0", "vat_rate": "19.00", "vat_detail": []}
        if amount is not None:
            details["cost_gross"] = amount
        return {"details": details, "status": {"code": code, "name": code}}

    def publish(self, body: dict, at: int, seq_hint: int = 0) -> str:
        msg = {"jsonrpc": "2.0", "id": f"msg-{self.seed}-{self.nid('msg')}", "method": REFUND_METHOD,
               "params": {"refund": body}}
        text = json.dumps(msg, separators=(",", ":"))
        self.ledger.append((at, len(self.ledger) + seq_hint, text))
        return text

    def credit_note(self, order_id: str, lines: list[tuple[str, str | None, str]], t: int, *,
                    currency: str | None, refund_type: str = "Return", versions: str = "simple",
                    rma: str | None = None) -> str:
        """lines: (order_item_id, amount text or None, payment status). versions: simple, pending_then_released,
        released_after_T, stale_pending, redelivered, conflict."""
        r = self.r
        cn = f"CN-{self.seed}-{self.nid('cn'):04d}"

        def body(status: str, when: int, amounts: list[tuple] | None = None, offset: int = 0) -> dict:
            b = {"order_id": order_id, "store_id": "0", "sales_channel_id": "ST1", "credit_note_number": cn,
                 "credit_note_date": fmt_iso(t), "rma": rma, "refund_type": refund_type,
                 "refund_reason": "RETURN_RECEIVED", "user": "finance.bot",
                 "status": {"code": status, "name": status, "reason_code": "X", "reason_name": "X",
                            "date": fmt_iso(when, offset)},
                 "lines": [{"order_line": str(k), "order_item_id": item, "reason": "TOO_BIG",
                            "reason_description": "Too big", "payments": self.payments(a, ps)}
                           for k, (item, a, ps) in enumerate(amounts or lines, 1)],
                 "custom_attributes": []}
            if undated and status == "RELEASED" and when == t:
                del b["status"]["date"]  # the version date is then credit_note_date
            if currency is not None:
                b["currency"] = currency
            elif explicit_null:
                b["currency"] = None
            return b

        offset = r.choice([0, 0, 0, 2, -1])
        explicit_null = self.chance(0.5)
        undated = versions in ("simple", "redelivered") and self.chance(0.15)
        if versions == "simple":
            self.publish(body("RELEASED", t, offset=offset), t)
        elif versions == "redelivered":
            text = self.publish(body("RELEASED", t, offset=offset), t)
            self.ledger.append((t + r.choice([0, DAY]), len(self.ledger), text))
        elif versions == "pending_then_released":
            t2 = t + int(r.uniform(0.1, 3) * DAY)
            self.publish(body("PENDING", t), t)
            self.publish(body("RELEASED", t2), t2)
        elif versions == "released_after_T":
            t2 = self.at(0.0001, 1.5) if self.chance(0.8) else T + SEC
            self.publish(body("PENDING", t), t)
            self.publish(body("RELEASED", t2), t2)
        elif versions == "released_at_T":
            self.publish(body("PENDING", t), t)
            self.publish(body("RELEASED", T), T)
        elif versions == "stale_pending":
            t2 = t + int(r.uniform(0.1, 2) * DAY)
            pending = body("PENDING", t)
            self.publish(body("RELEASED", t2), t2)
            self.publish(pending, t2 + DAY)  # the older PENDING arrives in a later file
        elif versions == "released_then_pending":  # a newer PENDING version: not money out any more
            t2 = t + int(r.uniform(0.1, 3) * DAY)
            self.publish(body("RELEASED", t), t)
            self.publish(body("PENDING", t2), t2)
        elif versions == "conflict":
            # a second version with the same date and other amounts: the second in file order is rejected
            other = [(item, str(Decimal(a) + 1) if a else a, ps) for item, a, ps in lines]
            self.publish(body("RELEASED", t), t)
            self.publish(body("RELEASED", t, other), t + HOUR)
        else:
            raise ValueError(versions)
        released = {"pending_then_released": locals().get("t2"), "released_after_T": locals().get("t2"),
                    "released_at_T": T, "stale_pending": locals().get("t2")}.get(versions, t)
        self.notes.append({"cn": cn, "order_id": order_id, "currency": currency, "lines": lines,
                           "released": released, "versions": versions})
        return cn

    # ------------------------------------------------------------------ stories
    def story_rma_line(self, o: dict, model: str, rows: list[dict]) -> None:
        r = self.r
        invalid = None
        if self.chance(0.04):
            invalid = r.choice(["quantity", "history_date", "model"])
        rmas = [self.make_rma(o, model, rows, invalid=invalid)]
        if invalid is None and self.chance(0.12):
            rmas.append(self.make_rma(o, model, rows))
        ug = self.unit_gross(o, rows)
        for rma in rmas:
            self.wms_for_rma(o, model, rma, rmas, restricted=invalid is not None)
        if invalid is None or self.chance(0.5):
            self.refunds_for_line(o, model, rows, ug, rmas)

    def wms_for_rma(self, o: dict, model: str, rma: dict, rmas: list[dict], restricted: bool) -> None:
        r = self.r
        modes = ["preauth", "tracking", "ordersku", "none"]
        mode = r.choices(modes, weights=[45, 20, 15, 20])[0]
        if mode == "preauth" and rma["auth"] is None:
            mode = "ordersku"
        if mode == "tracking" and rma["tracking"] is None:
            mode = "none"
        if restricted and mode == "tracking":
            mode = "preauth" if rma["auth"] is not None else "none"  # AMBIGUOUS: avoided (tracking of a rejected RMA)
        if rma["created"] > T:
            mode = "none"  # AMBIGUOUS: avoided (WMS return at T for an RMA that does not exist yet)
        if mode == "none":
            return
        base = rma["auth"] if mode == "preauth" else rma["created"]
        created = base + int(r.uniform(0.001, 0.2) * DAY)
        arrive = created + int(r.uniform(0.5, 20) * DAY) if self.chance(0.85) else None
        if mode != "preauth" and arrive is not None:
            created = arrive
        complete = arrive + int(r.uniform(0.05, 4) * DAY) if arrive is not None and self.chance(0.8) else None
        x = r.random()
        if complete is not None and x < 0.15:  # boundaries of the day thresholds, and T itself
            complete = r.choice([T - 3 * DAY, T - 2 * DAY, T - DAY, T, T + 1])
            arrive = min(arrive, complete - HOUR)
            created = min(created, arrive)
        elif arrive is not None and x < 0.2:
            arrive = r.choice([T, T + 1, T - 1])
            complete = None if self.chance(0.5) else arrive + 2 * HOUR
            created = min(created, arrive)
        grades = "".join(r.choices("UDMW", weights=[75, 12, 6, 7])[0] for _ in range(max(rma["qty"], 1)))
        if self.chance(0.1):
            grades += "U"
        elif self.chance(0.02):
            grades = ""  # a return without line items
        elif self.chance(0.08) and len(grades) > 1:
            grades = grades[:-1]
        other = [m for m in self.products if m != model]
        units = [(other[0] if other and self.chance(0.04) else model, g) for g in grades]
        order_ref = str(o["order_id"])
        tracking = None
        if mode == "tracking":
            tracking = rma["tracking"]
            if self.chance(0.2):
                order_ref = str(990000 + self.nid("order"))  # the parcel names another (unknown) order
        elif rma["tracking"] and self.chance(0.5):
            tracking = rma["tracking"]
        broken = None
        if self.chance(0.03) and not restricted:
            broken = r.choice(["timestamp", "state", "record"])
        w = self.make_wms(order_ref, rma["ref"] if mode == "preauth" else None, tracking, created, arrive,
                          complete, units, broken)
        if w is None:
            return
        how = r.choices(["correct", "missing", "off", "quarantine", "damaged_back"], weights=[60, 12, 10, 10, 8])[0]
        self.restock(w, {}, how)

    def refunds_for_line(self, o: dict, model: str, rows: list[dict], ug: Decimal, rmas: list[dict]) -> None:
        r = self.r
        if self.chance(0.3):
            return
        qty = max(1, min(sum(x["quantity"] for x in rows), rmas[0]["qty"] if rmas else 1))
        n_notes = 1 if self.chance(0.85) else 2
        for _ in range(n_notes):
            units = r.choice([qty, qty, qty, max(0, qty - 1), qty + 1])
            amount = cents(units * ug)
            y = r.random()
            if y < 0.08:
                amount += Decimal("0.01")          # exactly the tolerance
            elif y < 0.12:
                amount += Decimal("0.02")
            elif y < 0.18:
                amount = (units * ug).quantize(Decimal("0.001"), ROUND_HALF_UP) + Decimal("0.005")
            elif y < 0.22:
                amount = cents(ug * units / 2)
            elif y < 0.25:
                amount = (units * ug).quantize(Decimal("0.000001"), ROUND_HALF_UP)  # sub-cent decimals
            text = f"{amount:f}"
            if self.chance(0.1):
                text = text.rstrip("0").rstrip(".") or "0"
            if len(rows) > 1 and self.chance(0.5):
                half = cents(amount / 2)
                lines = [(str(rows[0]["order_product_id"]), f"{half:f}", "REFUNDED"),
                         (str(rows[1]["order_product_id"]), f"{amount - half:f}", "REFUNDED")]
            else:
                lines = [(str(r.choice(rows)["order_product_id"]), text,
                          "REFUNDED" if self.chance(0.93) else r.choice(["FAILED", "PENDING"]))]
            if self.chance(0.06):
                lines.append(("SHIPPING", "4.99", "REFUNDED"))
            currency = o["currency"]
            c = r.random()
            if c < 0.15:
                currency = None
            elif c < 0.22:
                currency = r.choice([k for k in CURRENCIES if k != o["currency"]])
            rtype = r.choices(["Return", "Appeasement", "Cancellation"], weights=[90, 6, 4])[0]
            versions = r.choices(["simple", "pending_then_released", "released_after_T", "released_at_T",
                                  "stale_pending", "redelivered", "conflict", "released_then_pending"],
                                 weights=[50, 12, 8, 3, 8, 10, 3, 3])[0]
            if versions == "conflict" and currency not in (None, o["currency"]):
                versions = "simple"  # AMBIGUOUS: avoided (which version a currency check would judge)
            t = self.at(-20, -0.5) if self.chance(0.9) else self.at(-40, -20)
            self.credit_note(str(o["order_id"]), lines, t, currency=currency, refund_type=rtype, versions=versions,
                             rma=rmas[0]["ref"] if rmas else None)
        if self.chance(0.02):  # a refund whose amount is not a number: rejected
            self.credit_note(str(o["order_id"]), [(str(rows[0]["order_product_id"]),
                                                   r.choice(["12,50abc", None]), "REFUNDED")],
                             self.at(-10, -1), currency=o["currency"])

    def story_shared_parcel(self, o: dict, lines: list[tuple[str, list[dict]]]) -> None:
        """Two RMA lines of one order sent back in one unannounced parcel with one tracking number."""
        r = self.r
        trk = self.tracking_number()
        rmas = [self.make_rma(o, model, rows, force_tracking=trk) for model, rows in lines]
        arrive = max(x["created"] for x in rmas) + int(r.uniform(0.5, 15) * DAY)
        complete = arrive + int(r.uniform(0.05, 3) * DAY) if self.chance(0.8) else None
        units = [(model, r.choices("UDW", weights=[85, 10, 5])[0]) for model, rma in zip((m for m, _ in lines), rmas)
                 for _ in range(rma["qty"])]
        w = self.make_wms(str(o["order_id"]), None, trk if self.chance(0.7) else None, arrive, arrive + MIN,
                          complete, units)
        if w is not None:
            self.restock(w, {}, r.choice(["correct", "correct", "off"]))
        for (model, rows), rma in zip(lines, rmas):
            self.refunds_for_line(o, model, rows, self.unit_gross(o, rows), [rma])

    def story_parcel(self, order_ref: str, model: str | None, n: int) -> None:
        """An unannounced WMS return that no RMA asked for."""
        r = self.r
        model = model or r.choice(sorted(self.products))
        arrive = self.at(-20, -0.5)
        complete = arrive + int(r.uniform(0.05, 3) * DAY) if self.chance(0.7) else None
        tracking = self.tracking_number() if self.chance(0.5) else None
        units = [(model, r.choices("UDMW", weights=[70, 15, 5, 10])[0]) for _ in range(n)]
        w = self.make_wms(order_ref, None, tracking, arrive, arrive + MIN, complete, units)
        if w is not None:
            self.restock(w, {}, r.choice(["correct", "correct", "missing"]))

    def story_orphan_refund(self, orders: list[dict]) -> None:
        r = self.r
        o = r.choice(orders)
        kind = r.choice(["other_order_row", "no_such_row", "unknown_order"])
        if kind == "other_order_row":
            others = [x for x in self.orders if x is not o]
            if not others:
                return
            item = str(r.choice(r.choice(others)["rows"])["order_product_id"])
            order_id = str(o["order_id"])
        elif kind == "no_such_row":
            item, order_id = str(880000 + self.nid("op")), str(o["order_id"])
        else:
            item, order_id = str(r.choice(o["rows"])["order_product_id"]), str(990000 + self.nid("order"))
        amount = f"{Decimal(r.randint(100, 9000)) / 100:f}"
        self.credit_note(order_id, [(item, amount, "REFUNDED")], self.at(-15, -1),
                         currency=o["currency"] if kind != "unknown_order" else r.choice(["EUR", None]),
                         refund_type=r.choice(["Return", "Appeasement"]))

    # ------------------------------------------------------------------ the world
    def build(self) -> None:
        r = self.r
        self.make_products()
        for _ in range(r.randint(5, 15)):
            self.make_order(abandoned=self.chance(0.1))
        live = [o for o in self.orders if o["status"] != 0]
        if not live:
            live.append(self.make_order())
        for o in live:
            lines = list(self.lines_of(o).items())
            if len(lines) >= 2 and self.chance(0.12):
                self.story_shared_parcel(o, lines[:2])
                lines = lines[2:]
            for model, rows in lines:
                x = r.random()
                if x < 0.6:
                    self.story_rma_line(o, model, rows)
                elif x < 0.72:  # a refund without any RMA
                    self.refunds_for_line(o, model, rows, self.unit_gross(o, rows), [])
                elif x < 0.8:
                    self.story_parcel(str(o["order_id"]), model, sum(z["quantity"] for z in rows))
        for o in self.orders:
            if o["status"] == 0:  # abandoned checkout: a refund naming one of its lines, maybe a parcel
                row = r.choice(o["rows"])
                if self.chance(0.7):
                    self.credit_note(str(o["order_id"]), [(str(row["order_product_id"]),
                                                           f"{cents((row['price'] + row['tax']) * o['cv']):f}",
                                                           "REFUNDED")],
                                     self.at(-10, -1), currency=o["currency"])
                if self.chance(0.3):
                    self.story_parcel(str(o["order_id"]), row["model"], 1)
        for _ in range(r.choice([0, 0, 1, 2])):
            self.story_orphan_refund(live)
        if self.chance(0.3):
            self.story_parcel(str(990000 + self.nid("order")), None, r.randint(1, 2))
        if self.ledger and self.chance(0.3):
            # other methods share the stream: a return message, and a refund body under another method
            at, _, text = r.choice(self.ledger)
            msg = json.loads(text)
            msg["method"] = r.choice(["magento.postsales.return_management.updated",
                                      "magento.postsales.return_management.authorize"])
            for ln in msg["params"]["refund"]["lines"]:
                for pay in ln["payments"]:
                    pay["details"]["cost_gross"] = "999.99"
            self.ledger.append((at + MIN, len(self.ledger), json.dumps(msg, separators=(",", ":"))))
        if self.ledger and self.chance(0.1):  # valid JSON that is not a message
            self.ledger.append((self.ledger[0][0] + MIN, len(self.ledger), r.choice(["[]", "null", '"x"', "42"])))
        if self.chance(0.2):  # an invalid JSON line (a truncated redelivery)
            if self.ledger:
                at, _, text = self.ledger[-1]
                self.ledger.append((at + HOUR, len(self.ledger), text[: len(text) // 2]))
        self.stock_work()
        from .payments_gen import add_payments
        self.provider_refunds = add_payments(self)
        self.finish()

    def stock_work(self) -> None:
        r = self.r
        for _ in range(r.choice([0, 1, 2])):  # stock work unrelated to returns
            model = r.choice(sorted(self.products))
            self.adjust(self.at(-6, 0.5), r.choice([None, "cycle-count"]), [(model, r.randint(1, 3), 0, 0, 0)],
                        "CycleCount")
        when = r.choice([T, T - 7 * DAY, T - 7 * DAY + 1])
        candidates = [w for w in self.wms_meta if not w["broken"] and w["units"] and w["created"] <= when - DAY]
        if self.chance(0.3) and candidates:  # a restock of a return at the edges of the lookback window
            w = r.choice(candidates)
            self.adjust(when, w["ref"], [(w["units"][0][0], 0, 0, 0, 1)], "ReleaseFromQuarantine")

    def finish(self) -> None:
        for table, rows in (("oc_order_status", ORDER_STATUSES), ("oc_return_status", RETURN_STATUSES),
                            ("oc_return_reason", RETURN_REASONS), ("oc_return_action", RETURN_ACTIONS)):
            for i, name in rows:
                self.rows[table].append((i, 1, name))
                self.rows[table].append((i, 2, f"DE {name}"))
        self.stocks = []
        for model, ps in sorted(self.products.items()):
            total = sum(p["quantity"] for p in ps)
            gap = self.r.choices([0, 1, 2, 3, -1], weights=[60, 15, 8, 5, 12])[0]
            avail = max(0, total + gap)
            self.stocks.append({"id": f"stock-{model}", "updatedAt": self.wts(NOW - HOUR), "sku": model,
                                "name": model, "barcodes": [], "totalStockAmount": avail + 1,
                                "availableStock": avail, "reservedStock": 1, "receivedItemAmount": avail + 5,
                                "damagedItemAmount": 0, "expiredAmount": 0, "lostItemAmount": 0})

    # ------------------------------------------------------------------ writing
    def write(self, out: Path) -> dict:
        out.mkdir(parents=True, exist_ok=True)
        db_path = out / "storefront.sqlite"
        if db_path.exists():
            db_path.unlink()
        db = sqlite3.connect(str(db_path))
        for table, ddl in SCHEMA.items():
            db.execute(f"CREATE TABLE {table} ({ddl})")
            cols = COLUMNS[table]
            db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                           self.rows[table])
        db.commit()
        db.close()
        (out / "wms").mkdir(exist_ok=True)
        for name, recs in (("returns", self.wms), ("stock_adjustments", self.adjustments), ("stocks", self.stocks)):
            (out / "wms" / f"{name}.jsonl").write_text("".join(json.dumps(x, separators=(",", ":")) + "\n"
                                                               for x in recs), encoding="utf-8")
        ledger = out / "ledger"
        ledger.mkdir(exist_ok=True)
        files: dict[str, list[str]] = {}
        for at, _, text in sorted(self.ledger, key=lambda x: (x[0], x[1])):
            files.setdefault(dt(min(at, NOW)).strftime("%Y-%m-%d"), []).append(text)
        for day, texts in files.items():
            (ledger / f"oms-messages-{day}.jsonl").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        (out / "payments").mkdir(exist_ok=True)
        (out / "payments" / "refunds.jsonl").write_text(
            "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in self.provider_refunds), encoding="utf-8")
        manifest = {"generator": "tests.differential.generator", "seed": self.seed, "payments_key": PAYMENTS_KEY,
                    "business_date": BUSINESS_DATE.isoformat(), "as_of": "2026-04-01T00:00:00Z",
                    "now": dt(NOW).strftime("%Y-%m-%dT%H:%M:%SZ"), "tenant_id": TENANT_ID, "token": TOKEN,
                    "store_currency": "EUR"}
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return manifest


def generate(out_dir: Path, seed: int) -> dict:
    g = Gen(seed)
    g.build()
    return g.write(Path(out_dir))
