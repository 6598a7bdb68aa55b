"""Reference evaluation of the discrepancy rules: the contract (reconciliation.md and the decisions of
the differential-test brief) as plain Python over the RAW sources of one world.

It reads the OpenCart SQLite file with sqlite3, the WMS records from ``wms/*.jsonl`` and the OMS
message files ``ledger/*.jsonl``; it never uses the pipeline's SQL, connectors or tables.
``evaluate(world_dir, business_date)`` returns one ``Finding`` per discrepancy. There is one
function per rule, named after the rule code.
"""
from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

# ---------------------------------------------------------------------------------------- config
TOLERANCE = Decimal("0.01")
REFUND_SLA_DAYS, TRANSIT_DAYS, STATUS_LAG_DAYS, RESTOCK_LAG_DAYS, STOCK_LOOKBACK_DAYS = 3, 21, 2, 1, 7
STATUS_MAP = {"pending": "REQUESTED", "awaiting products": "AUTHORIZED", "complete": "COMPLETED",
              "rejected": "REJECTED", "cancelled": "CANCELED", "canceled": "CANCELED"}
ACTION_MAP = {"refunded": "REFUNDED", "credit issued": "CREDIT_ISSUED", "replacement sent": "REPLACEMENT_SENT",
              "waiting for return": "WAITING_FOR_RETURN"}
NON_REFUND_ACTIONS = {"CREDIT_ISSUED", "REPLACEMENT_SENT"}
CLOSED = {"REJECTED", "CANCELED"}
TRACKING_RE = re.compile(r"(?i)tracking(?:\s*(?:no\.?|number|id|#))?\s*[:#]?\s*(?=[A-Za-z0-9]{8,40}\b)"
                         r"([A-Za-z]*\d[A-Za-z0-9]*)")
REFUND_METHOD = "magento.postsales.refund_management.updated"
UNIT_STATES = {"WaitingToBeProcessed", "Missing", "Damaged", "Undamaged"}
RMA_REF_RE = re.compile(r"^RMA-\d+$")
UNKNOWN = "UNKNOWN"
Q8 = Decimal("0.00000001")


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def whole(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Finding:
    rule: str
    key: tuple              # the grain keys, as in recon.discrepancy_detections (see GRAIN)
    amount_at_risk: Decimal  # to the cent
    quantity_gap: int | None  # None: the contract does not define one for the rule (not compared)
    order_line_reference: str | None = None


# grain columns per rule, in the order of Finding.key
GRAIN = {
    **{r: ("order_reference", "sku") for r in (
        "DUPLICATE_REFUND", "OVER_REFUND", "REFUND_WITHOUT_RECEIPT", "REFUND_FOR_DAMAGED_GOODS",
        "RECEIVED_NOT_REFUNDED", "QUANTITY_MISMATCH")},
    "RMA_NOT_RECEIVED": ("rma_reference",),
    "STATUS_MISMATCH": ("rma_reference", "kind"),
    "ORPHAN_WMS_RETURN": ("return_reference",),
    "REFERENCE_MISMATCH": ("return_reference",),
    "RESTOCK_MISMATCH": ("return_reference", "sku"),
    "ORPHAN_REFUND": ("refund_reference", "order_line_reference"),
    "REFUND_CURRENCY_MISMATCH": ("refund_reference", "order_line_reference"),
    "UNSYNCED_STOCK_ADJUSTMENT": ("sku",),
    "CREDIT_NOTE_NOT_PAID": ("refund_reference", "kind"),
    "PAYMENT_WITHOUT_CREDIT_NOTE": ("refund_reference",),
    "PAYMENT_AMOUNT_MISMATCH": ("refund_reference",),
}
RULES = list(GRAIN)


# ---------------------------------------------------------------------------------------- parsing
def oc_time(value) -> datetime | None:
    """OpenCart DATETIME text (UTC) -> naive UTC datetime; null and MySQL zero dates -> None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.startswith("0000-00-00"):
        return None
    return datetime.fromisoformat(text)


def iso_time(value) -> datetime:
    """ISO-8601 with any fraction digits and offset -> naive UTC. Raises ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def opt_iso(value) -> datetime | None:
    return None if value is None else iso_time(value)


def dec(value) -> Decimal:
    """A number as stored by SQLite (text, int or float) -> Decimal."""
    return Decimal(str(value))


def amount(value) -> Decimal:
    """A ledger amount string -> exact Decimal. Raises ValueError when missing or not a number."""
    if not isinstance(value, str):
        raise ValueError(f"missing or non-string amount {value!r}")
    try:
        d = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(f"non-numeric amount {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"non-finite amount {value!r}")
    return d


# ---------------------------------------------------------------------------------------- model
@dataclass
class OrderLine:
    order_ref: str
    sku_key: str
    sku: str                      # trim(model) of the row with the lowest order_product_id
    row_ids: list[int]
    ordered: int
    unit_gross: Decimal
    currency: str

    @property
    def reference(self) -> str:
        return ",".join(str(i) for i in sorted(self.row_ids))


@dataclass
class Rma:
    ref: str
    order_ref: str
    line: OrderLine
    quantity: int
    status: str                   # canonical, or UNKNOWN
    authorized_since: datetime | None
    tracking: str | None
    action: str | None            # canonical, UNKNOWN, or None (no action)
    matched: list = field(default_factory=list)   # WmsReturn
    method: str | None = None


@dataclass
class Unit:
    sku: str
    state: str                    # at T


@dataclass
class WmsReturn:
    ref: str
    order_ref: str | None
    tracking: str | None
    created: datetime
    arrived: datetime | None
    completed: datetime | None
    units: list[Unit]

    @property
    def has_arrived(self) -> bool:   # by T (arrived or completed)
        return self.arrived is not None or self.completed is not None

    @property
    def is_completed(self) -> bool:
        return self.completed is not None


@dataclass
class RefundLine:
    credit_note: str
    order_ref: str
    item: str
    refund_type: str | None
    money: Decimal                # refunded payments of a RELEASED version (0 when not money out)
    currency: str | None

    @property
    def money_out(self) -> bool:
        return self.money > 0


class World:
    """Everything the rules need, as of T, read from the raw sources."""

    def __init__(self, world_dir: Path, business_date: date):
        self.dir = Path(world_dir)
        self.T = datetime.combine(business_date + timedelta(days=1), time.min)
        self.tainted_orders: set[str] = set()
        self.tainted_rmas: set[str] = set()
        self.restock_skipped_returns: set[str] = set()
        self.read_storefront()
        self.read_wms()
        self.read_ledger()
        self.match()

    def before(self, days: int) -> datetime:
        return self.T - timedelta(days=days)

    # ------------------------------------------------------------------------ storefront
    def read_storefront(self) -> None:
        con = sqlite3.connect(f"file:{self.dir / 'storefront.sqlite'}?mode=ro", uri=True)
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        status_names = dict(q("SELECT return_status_id, name FROM oc_return_status WHERE language_id = 1"))
        action_names = dict(q("SELECT return_action_id, name FROM oc_return_action WHERE language_id = 1"))
        orders = {}
        for oid, status, currency, cv in q("SELECT order_id, order_status_id, currency_code, currency_value "
                                           "FROM oc_order"):
            if status == 0:   # abandoned checkout: not an order
                continue
            orders[str(oid)] = (currency, dec(cv))
        self.orders = orders
        rows: dict[tuple[str, str], list[tuple]] = {}
        self.order_rows: dict[str, dict[str, tuple[str, str]]] = {}   # order -> item id -> line key
        for opid, oid, model, qty, price, tax in q("SELECT order_product_id, order_id, model, quantity, price, tax "
                                                   "FROM oc_order_product ORDER BY order_product_id"):
            ref = str(oid)
            if ref not in orders:
                continue
            key = (ref, (model or "").strip().lower())
            rows.setdefault(key, []).append((opid, (model or "").strip(), int(qty), dec(price), dec(tax)))
            self.order_rows.setdefault(ref, {})[str(opid)] = key
        self.lines: dict[tuple[str, str], OrderLine] = {}
        for (ref, sku_key), rs in rows.items():
            currency, cv = orders[ref]
            total_qty = sum(r[2] for r in rs)
            gross = sum(((r[3] + r[4]) * cv * r[2] for r in rs), Decimal(0))
            ug = (gross / total_qty).quantize(Q8, rounding=ROUND_HALF_UP) if total_qty else Decimal(0)
            self.lines[(ref, sku_key)] = OrderLine(ref, sku_key, rs[0][1], [r[0] for r in rs], total_qty, ug,
                                                   currency)

        history: dict[int, list[tuple]] = {}
        for hid, rid, sid, comment, added in q("SELECT return_history_id, return_id, return_status_id, comment, "
                                               "date_added FROM oc_return_history"):
            history.setdefault(rid, []).append((hid, sid, comment, added))

        def status_of(name) -> str:
            if name is None:
                return UNKNOWN
            return STATUS_MAP.get(str(name).strip().lower(), UNKNOWN)

        self.rmas: list[Rma] = []
        for (rid, oid, model, qty, action_id, status_id, added) in q(
                "SELECT return_id, order_id, model, quantity, return_action_id, return_status_id, date_added "
                "FROM oc_return ORDER BY return_id"):
            ref, order_ref = f"RMA-{rid}", str(oid)
            created = oc_time(added)
            line = self.lines.get((order_ref, (model or "").strip().lower()))
            # history rows that cannot be placed in time are rejects: they taint the RMA and its order
            rows_h = []
            for hid, sid, comment, h_added in history.get(rid, []):
                t = oc_time(h_added)
                if t is None:
                    self.tainted_rmas.add(ref)
                    self.tainted_orders.add(order_ref)
                    continue
                rows_h.append((t, hid, sid, comment))
            if qty is None or int(qty) <= 0 or created is None or order_ref not in orders or line is None:
                self.tainted_rmas.add(ref)   # a rejected RMA
                self.tainted_orders.add(order_ref)
                continue
            if created > self.T:
                continue                      # does not exist at T
            rows_h = sorted(r for r in rows_h if r[0] <= self.T)
            if rows_h:
                status = status_of(status_names.get(rows_h[-1][2]))
                since = None
                for t, _hid, sid, _c in rows_h:
                    if status_of(status_names.get(sid)) == "AUTHORIZED":
                        since = since or t
                    else:
                        since = None
            else:
                status = status_of(status_names.get(status_id))
                since = created
            tracking = None
            for _t, _hid, _sid, comment in reversed(rows_h):
                found = list(TRACKING_RE.finditer(comment or ""))
                if found:
                    tracking = found[-1].group(1)
                    break
            if action_id in (None, 0):
                action = None
            else:
                name = action_names.get(action_id)
                action = ACTION_MAP.get(str(name).strip().lower(), UNKNOWN) if name is not None else UNKNOWN
            self.rmas.append(Rma(ref, order_ref, line, int(qty), status, since if status == "AUTHORIZED" else None,
                                 tracking, action))

        self.products: dict[str, list[tuple[int, Decimal]]] = {}
        for model, qty, price in q("SELECT model, quantity, price FROM oc_product"):
            self.products.setdefault(model, []).append((int(qty), dec(price)))
        con.close()

    # ------------------------------------------------------------------------ WMS
    def read_wms(self) -> None:
        def jsonl(name: str) -> list[dict]:
            path = self.dir / "wms" / name
            return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()] \
                if path.exists() else []

        self.all_return_refs: set[str] = set()
        self.returns: list[WmsReturn] = []
        for rec in jsonl("returns.jsonl"):
            ref = rec.get("returnReferenceNumber")
            order_ref = rec.get("salesOrderReferenceNumber")
            order_ref = None if order_ref in (None, "") else str(order_ref)
            try:
                if not ref:
                    raise ValueError("no reference")
                created = iso_time(rec.get("createdAt"))
                iso_time(rec.get("updatedAt"))
                arrived, completed = opt_iso(rec.get("arrivedToWarehouseAt")), opt_iso(rec.get("completedAt"))
                units = []
                for li in rec.get("lineItems") or []:
                    if not li.get("lineItemReferenceNumber") or not li.get("sku"):
                        raise ValueError("line item without reference or sku")
                    if li.get("state") not in UNIT_STATES:
                        raise ValueError(f"unknown line item state {li.get('state')!r}")
                    processed = opt_iso(li.get("processedAt"))
                    state = li["state"]
                    if state != "WaitingToBeProcessed" and (processed is None or processed > self.T):
                        state = "WaitingToBeProcessed"
                    units.append(Unit(str(li["sku"]), state))
            except (ValueError, TypeError):
                # a rejected WMS return taints its order and, when it names an RMA, that RMA
                if order_ref:
                    self.tainted_orders.add(order_ref)
                if isinstance(ref, str) and RMA_REF_RE.match(ref):
                    self.tainted_rmas.add(ref)
                continue
            self.all_return_refs.add(str(ref))
            if created > self.T:
                continue
            self.returns.append(WmsReturn(
                str(ref), order_ref, rec.get("trackingId") or None, created,
                arrived if arrived is not None and arrived <= self.T else None,
                completed if completed is not None and completed <= self.T else None, units))
        self.adjustments = []   # (completedAt, tag, sku, net)
        for rec in jsonl("stock_adjustments.jsonl"):
            t = iso_time(rec["completedAt"])
            for li in rec.get("lineItems") or []:
                net = (int(li.get("foundAmount") or 0) + int(li.get("releaseFromQuarantineAmount") or 0)
                       - int(li.get("lostAmount") or 0) - int(li.get("putInQuarantineAmount") or 0))
                self.adjustments.append((t, rec.get("tag"), li["sku"], net))
        self.stocks = {rec["sku"]: int(rec["availableStock"]) for rec in jsonl("stocks.jsonl")}

    # ------------------------------------------------------------------------ ledger
    def read_ledger(self) -> None:
        versions: dict[str, dict[datetime, dict]] = {}   # credit note -> version date -> refund body
        self.ledger_tainted_orders: set[str] = set()     # named by a rejected ledger line (payment rules)
        self.ledger_tainted_cns: set[str] = set()
        self.note_dates: dict[str, datetime] = {}        # credit note -> date of its version in force at T
        for path in sorted((self.dir / "ledger").glob("*.jsonl"), key=lambda p: p.name):
            for text in path.read_text(encoding="utf-8").splitlines():
                if not text.strip():
                    continue
                try:
                    msg = json.loads(text)
                except json.JSONDecodeError:
                    continue   # invalid JSON: a reject that names no order
                if not isinstance(msg, dict) or msg.get("method") != REFUND_METHOD:
                    continue
                body = (msg.get("params") or {}).get("refund") or {}
                order_ref = body.get("order_id")
                try:
                    cn = body["credit_note_number"]
                    status = body.get("status") or {}
                    vdate = iso_time(status.get("date") or body.get("credit_note_date"))
                    iso_time(body.get("credit_note_date"))
                    for ln in body["lines"]:
                        for pay in ln.get("payments") or []:
                            amount((pay.get("details") or {}).get("cost_gross"))
                    seen = versions.setdefault(cn, {})
                    if vdate in seen and seen[vdate] != body:
                        raise ValueError("conflicting version")
                    seen[vdate] = body
                except (ValueError, KeyError, TypeError):
                    if order_ref not in (None, ""):
                        self.tainted_orders.add(str(order_ref))
                        self.ledger_tainted_orders.add(str(order_ref))
                    named = body.get("credit_note_number") if isinstance(body, dict) else None
                    if isinstance(named, str) and named.strip():
                        self.ledger_tainted_cns.add(named.strip())
                    continue
        self.refund_lines: list[RefundLine] = []
        for cn, by_date in versions.items():
            dated = [d for d in by_date if d <= self.T]
            if not dated:
                continue
            body = by_date[max(dated)]
            if iso_time(body["credit_note_date"]) > self.T:
                continue
            self.note_dates[cn] = max(dated)
            order_ref = str(body["order_id"])
            released = (body.get("status") or {}).get("code") == "RELEASED"
            currency = body.get("currency") or (self.orders.get(order_ref, (None,))[0])
            for ln in body["lines"]:
                money = sum((amount(p["details"]["cost_gross"]) for p in ln.get("payments") or []
                             if (p.get("status") or {}).get("code") == "REFUNDED"), Decimal(0))
                self.refund_lines.append(RefundLine(cn, order_ref, str(ln["order_item_id"]), body.get("refund_type"),
                                                    money if released else Decimal(0), currency))

    # ------------------------------------------------------------------------ matching
    def match(self) -> None:
        for rma in self.rmas:
            by_ref = [w for w in self.returns if w.ref == rma.ref]
            by_tracking = [w for w in self.returns if rma.tracking and w.tracking == rma.tracking]
            by_order_sku = [w for w in self.returns if w.order_ref == rma.order_ref
                            and any(u.sku == rma.line.sku for u in w.units)]
            for method, found in (("reference", by_ref), ("tracking", by_tracking), ("order_sku", by_order_sku)):
                if found:
                    rma.matched, rma.method = found, method
                    break

    def unit_gross_of(self, order_ref: str | None, sku: str) -> Decimal:
        line = self.lines.get((order_ref, sku.strip().lower())) if order_ref is not None else None
        return line.unit_gross if line else Decimal(0)


# ---------------------------------------------------------------------------------------- order lines
@dataclass
class Position:
    line: OrderLine
    rmas: list[Rma]
    matched: list[WmsReturn]
    requested: int
    received: int
    accepted: int
    damaged: int
    refunded: Decimal
    credit_notes: int
    refunded_units: int


def counted_refund(w: World, rl: RefundLine) -> OrderLine | None:
    """The order line a refund line counts for in the order-line rules, or None."""
    if rl.refund_type != "Return" or rl.item == "SHIPPING" or not rl.money_out:
        return None
    key = w.order_rows.get(rl.order_ref, {}).get(rl.item)
    if key is None:
        return None
    line = w.lines[key]
    return line if rl.currency == line.currency else None


def positions(w: World) -> list[Position]:
    by_line: dict[tuple[str, str], dict] = {}
    for rma in w.rmas:
        by_line.setdefault((rma.order_ref, rma.line.sku_key), {"rmas": [], "refunds": []})["rmas"].append(rma)
    for rl in w.refund_lines:
        line = counted_refund(w, rl)
        if line is not None:
            by_line.setdefault((line.order_ref, line.sku_key), {"rmas": [], "refunds": []})["refunds"].append(rl)
    out = []
    for key, parts in by_line.items():
        line = w.lines[key]
        if line.order_ref in w.tainted_orders:
            continue
        rmas = parts["rmas"]
        matched = list({id(m): m for rma in rmas for m in rma.matched}.values())
        requested = min(sum(r.quantity for r in rmas if r.status not in CLOSED), line.ordered)
        arrived_units = [u for m in matched if m.has_arrived for u in m.units if u.sku == line.sku]
        received = sum(1 for u in arrived_units if u.state in ("Undamaged", "Damaged", "WaitingToBeProcessed"))
        accepted = sum(1 for u in arrived_units if u.state == "Undamaged")
        damaged = sum(1 for u in arrived_units if u.state == "Damaged")
        refunded = sum((rl.money for rl in parts["refunds"]), Decimal(0))
        notes = len({rl.credit_note for rl in parts["refunds"]})
        units = whole(refunded / line.unit_gross) if line.unit_gross else 0
        out.append(Position(line, rmas, matched, requested, received, accepted, damaged, refunded, notes, units))
    return out


def ol_finding(rule: str, p: Position, amount_: Decimal, gap: int | None) -> Finding:
    return Finding(rule, (p.line.order_ref, p.line.sku), cents(amount_), gap, p.line.reference)


def DUPLICATE_REFUND(w: World, ps: list[Position]) -> list[Finding]:
    return [ol_finding("DUPLICATE_REFUND", p, p.refunded - p.requested * p.line.unit_gross,
                       p.refunded_units - p.requested)
            for p in ps if p.credit_notes >= 2 and p.refunded > p.requested * p.line.unit_gross + TOLERANCE]


def OVER_REFUND(w: World, ps: list[Position]) -> list[Finding]:
    # quantity_gap: not defined by the contract for this rule (not compared)
    return [ol_finding("OVER_REFUND", p, p.refunded - p.requested * p.line.unit_gross, None)
            for p in ps if p.credit_notes == 1 and p.refunded > p.requested * p.line.unit_gross + TOLERANCE]


def REFUND_WITHOUT_RECEIPT(w: World, ps: list[Position]) -> list[Finding]:
    return [ol_finding("REFUND_WITHOUT_RECEIPT", p, (p.refunded_units - p.received) * p.line.unit_gross,
                       p.refunded_units - p.received)
            for p in ps if p.refunded_units > p.received]


def REFUND_FOR_DAMAGED_GOODS(w: World, ps: list[Position]) -> list[Finding]:
    return [ol_finding("REFUND_FOR_DAMAGED_GOODS", p,
                       (p.refunded_units - (p.received - p.damaged)) * p.line.unit_gross, None)
            for p in ps if p.received >= p.refunded_units > p.received - p.damaged]


def RECEIVED_NOT_REFUNDED(w: World, ps: list[Position]) -> list[Finding]:
    out = []
    for p in ps:
        completed = [m.completed for m in p.matched if m.is_completed]
        if not (p.accepted > p.refunded_units and completed and max(completed) < w.before(REFUND_SLA_DAYS)):
            continue
        live = [r for r in p.rmas if r.status not in CLOSED]
        if any(r.action == UNKNOWN for r in live) or any(r.action in NON_REFUND_ACTIONS for r in live):
            continue
        out.append(ol_finding("RECEIVED_NOT_REFUNDED", p, (p.accepted - p.refunded_units) * p.line.unit_gross,
                              p.accepted - p.refunded_units))
    return out


def QUANTITY_MISMATCH(w: World, ps: list[Position]) -> list[Finding]:
    return [ol_finding("QUANTITY_MISMATCH", p, abs(p.received - p.requested) * p.line.unit_gross,
                       p.received - p.requested)
            for p in ps if p.matched and all(m.is_completed for m in p.matched) and p.received != p.requested]


# ---------------------------------------------------------------------------------------- RMA lines
def judged_rmas(w: World) -> list[Rma]:
    return [r for r in w.rmas if r.order_ref not in w.tainted_orders and r.ref not in w.tainted_rmas
            and r.status != UNKNOWN]


def RMA_NOT_RECEIVED(w: World) -> list[Finding]:
    return [Finding("RMA_NOT_RECEIVED", (r.ref,), cents(r.quantity * r.line.unit_gross), r.quantity)
            for r in judged_rmas(w)
            if r.status == "AUTHORIZED" and r.authorized_since < w.before(TRANSIT_DAYS)
            and not any(m.has_arrived for m in r.matched)]


def STATUS_MISMATCH(w: World) -> list[Finding]:
    out = []
    for r in judged_rmas(w):
        completed = [m.completed for m in r.matched if m.is_completed]
        if r.status in ("REQUESTED", "AUTHORIZED") and completed and max(completed) < w.before(STATUS_LAG_DAYS):
            out.append(Finding("STATUS_MISMATCH", (r.ref, "wms_completed_rma_open"), Decimal("0.00"), None))
        if r.status == "COMPLETED" and not completed:
            out.append(Finding("STATUS_MISMATCH", (r.ref, "rma_completed_wms_not_completed"), Decimal("0.00"), None))
    return out


# ---------------------------------------------------------------------------------------- WMS returns
def ORPHAN_WMS_RETURN(w: World) -> list[Finding]:
    matched = {m.ref for r in w.rmas for m in r.matched}
    out = []
    for m in w.returns:
        if m.ref in matched or m.order_ref in w.tainted_orders or m.ref in w.tainted_rmas:
            continue
        units = [u for u in m.units if u.state != "Missing"]
        out.append(Finding("ORPHAN_WMS_RETURN", (m.ref,),
                           cents(sum((w.unit_gross_of(m.order_ref, u.sku) for u in units), Decimal(0))), len(units)))
    return out


def REFERENCE_MISMATCH(w: World) -> list[Finding]:
    refs = {m.ref for r in w.rmas if r.method == "tracking" for m in r.matched if m.order_ref != r.order_ref}
    return [Finding("REFERENCE_MISMATCH", (ref,), Decimal("0.00"), None) for ref in sorted(refs)]


def RESTOCK_MISMATCH(w: World) -> list[Finding]:
    out = []
    for m in w.returns:
        if not m.is_completed or not m.completed < w.before(RESTOCK_LAG_DAYS) or m.ref in w.restock_skipped_returns:
            continue
        for sku in sorted({u.sku for u in m.units}):
            restocked = sum(net for t, tag, s, net in w.adjustments if t <= w.T and tag == m.ref and s == sku)
            undamaged = sum(1 for u in m.units if u.sku == sku and u.state == "Undamaged")
            if restocked != undamaged:
                gap = restocked - undamaged
                out.append(Finding("RESTOCK_MISMATCH", (m.ref, sku), cents(abs(gap) * w.unit_gross_of(m.order_ref, sku)),
                                   gap))
    return out


# ---------------------------------------------------------------------------------------- refunds
def ORPHAN_REFUND(w: World) -> list[Finding]:
    return [Finding("ORPHAN_REFUND", (rl.credit_note, rl.item), cents(rl.money), None)
            for rl in w.refund_lines
            if rl.money_out and rl.item != "SHIPPING" and rl.item not in w.order_rows.get(rl.order_ref, {})
            and rl.order_ref not in w.tainted_orders]


def REFUND_CURRENCY_MISMATCH(w: World) -> list[Finding]:
    out = []
    for rl in w.refund_lines:
        key = w.order_rows.get(rl.order_ref, {}).get(rl.item)
        if rl.money_out and rl.item != "SHIPPING" and key is not None and rl.currency != w.lines[key].currency:
            out.append(Finding("REFUND_CURRENCY_MISMATCH", (rl.credit_note, rl.item), cents(rl.money), None))
    return out


# ---------------------------------------------------------------------------------------- stock
def UNSYNCED_STOCK_ADJUSTMENT(w: World) -> list[Finding]:
    out = []
    lookback_start = w.before(STOCK_LOOKBACK_DAYS)
    for sku, available in sorted(w.stocks.items()):
        shop = w.products.get(sku)
        if not shop:
            continue
        gap = available - sum(q for q, _ in shop)
        recent = any(lookback_start < t <= w.T and tag in w.all_return_refs and s == sku and net > 0
                     for t, tag, s, net in w.adjustments)
        if gap > 0 and recent:
            out.append(Finding("UNSYNCED_STOCK_ADJUSTMENT", (sku,), cents(gap * max(p for _, p in shop)), gap))
    return out


def evaluate(world_dir: Path, business_date: date) -> list[Finding]:
    w = World(world_dir, business_date)
    ps = positions(w)
    findings: list[Finding] = []
    for rule in (DUPLICATE_REFUND, OVER_REFUND, REFUND_WITHOUT_RECEIPT, REFUND_FOR_DAMAGED_GOODS,
                 RECEIVED_NOT_REFUNDED, QUANTITY_MISMATCH):
        findings += rule(w, ps)
    for rule in (RMA_NOT_RECEIVED, STATUS_MISMATCH, ORPHAN_WMS_RETURN, REFERENCE_MISMATCH, RESTOCK_MISMATCH,
                 ORPHAN_REFUND, REFUND_CURRENCY_MISMATCH, UNSYNCED_STOCK_ADJUSTMENT):
        findings += rule(w)
    if (Path(world_dir) / "payments").is_dir():  # the source is enabled only when the world has it
        from .payments_reference import payment_findings
        findings += payment_findings(w, Path(world_dir) / "payments" / "refunds.jsonl")
    return findings
