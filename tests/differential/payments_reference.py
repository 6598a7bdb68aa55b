"""The payment rules of the contract (reconciliation.md "Credit notes against payment-provider
refunds", sources.md section 4) as plain Python over ``payments/refunds.jsonl`` and the reference's
own reading of the ledger (reference.World): validation, matching and the three rules. It never
uses the pipeline's models, SQL or matching."""
from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from .reference import TOLERANCE, Finding, cents

STATUSES = {"pending", "requires_action", "succeeded", "failed", "canceled"}
EXPONENT = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}   # every currency the generator writes
MATCH_DAYS = timedelta(days=3)
LAG_DAYS = timedelta(days=3)


def _text(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def read_refunds(path: Path) -> tuple[list[dict], set[str], set[str]]:
    """-> (valid refunds, orders and credit notes named by the rejected ones)."""
    valid, bad_orders, bad_notes = [], set(), set()
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        amount, currency, created = obj.get("amount"), str(obj.get("currency") or "").strip().upper(), obj.get("created")
        ok = (isinstance(obj.get("id"), str) and obj["id"]
              and isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0
              and currency in EXPONENT and isinstance(created, int) and not isinstance(created, bool) and created >= 0
              and obj.get("status") in STATUSES)
        if not ok:
            if _text(meta.get("order_id")):
                bad_orders.add(_text(meta.get("order_id")))
            if _text(meta.get("credit_note_number")):
                bad_notes.add(_text(meta.get("credit_note_number")))
            continue
        valid.append({"id": obj["id"], "amount": Decimal(amount).scaleb(-EXPONENT[currency]), "currency": currency,
                      "created": datetime.fromtimestamp(created, tz=timezone.utc).replace(tzinfo=None),
                      "status": obj["status"], "order": _text(meta.get("order_id")),
                      "cn": _text(meta.get("credit_note_number"))})
    return valid, bad_orders, bad_notes


def payment_findings(w, path: Path) -> list[Finding]:
    refunds, bad_orders, bad_notes = read_refunds(path)
    refunds = sorted((r for r in refunds if r["created"] <= w.T), key=lambda r: (r["created"], r["id"]))
    notes: dict[str, dict] = {}
    for rl in w.refund_lines:
        n = notes.setdefault(rl.credit_note, {"order": rl.order_ref, "currency": rl.currency, "amount": Decimal(0),
                                              "money_out": False, "date": w.note_dates[rl.credit_note]})
        n["amount"] += rl.money
        n["money_out"] = n["money_out"] or rl.money_out
    # matching: created order, reference first, then order + amount not yet covered within 3 days
    covered: dict[str, Decimal] = defaultdict(Decimal)
    linked: dict[str, list[dict]] = defaultdict(list)
    unlinked = []
    in_date_order = sorted(notes, key=lambda cn: (notes[cn]["date"], cn))
    for r in refunds:
        hit = r["cn"] if r["cn"] in notes else None
        if hit is None and r["order"] is not None:
            for cn in in_date_order:
                n = notes[cn]
                if (n["money_out"] and n["order"] == r["order"] and n["currency"] == r["currency"]
                        and abs(r["created"] - n["date"]) <= MATCH_DAYS
                        and abs(r["amount"] - (n["amount"] - covered[cn])) <= TOLERANCE):
                    hit = cn
                    break
        if hit is None:
            unlinked.append(r)
            continue
        linked[hit].append(r)
        if r["status"] == "succeeded":
            covered[hit] += r["amount"]

    def unjudged(cn: str, order: str | None) -> bool:
        return (cn in w.ledger_tainted_cns or cn in bad_notes
                or (order is not None and (order in w.ledger_tainted_orders or order in bad_orders)))

    out = []
    for cn, n in notes.items():
        if unjudged(cn, n["order"]):
            continue
        paid_by = [r for r in linked[cn] if r["status"] == "succeeded"]
        if n["money_out"] and n["date"] < w.T - LAG_DAYS and not paid_by:
            tried = linked[cn]
            kind = "payment_failed" if tried and all(r["status"] in ("failed", "canceled") for r in tried) \
                else "no_payment"
            out.append(Finding("CREDIT_NOTE_NOT_PAID", (cn, kind), cents(n["amount"]), None))
        paid = sum((r["amount"] for r in paid_by), Decimal(0))
        if paid_by and abs(paid - n["amount"]) > TOLERANCE:
            out.append(Finding("PAYMENT_AMOUNT_MISMATCH", (cn,), cents(abs(paid - n["amount"])), None))
    for r in unlinked:
        if r["status"] != "succeeded" or r["created"] >= w.T - MATCH_DAYS:
            continue
        if (r["cn"] is not None and r["cn"] in w.ledger_tainted_cns) or \
                (r["order"] is not None and r["order"] in w.ledger_tainted_orders):
            continue
        out.append(Finding("PAYMENT_WITHOUT_CREDIT_NOTE", (r["id"],), cents(r["amount"]), None))
    return out
