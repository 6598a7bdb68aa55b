"""The demo world's payment provider: the refunds it sent for the world's credit notes
(``<world>/payments/refunds.jsonl``, Stripe refund objects served by the emulator on ``/v1/``),
and the injected cases and look-alikes of the three payment rules (reconciliation.md "Credit
notes against payment-provider refunds").

By default a money-out credit note is paid exactly once, 10 minutes to 6 hours after its release,
with ``metadata.order_id`` and ``metadata.credit_note_number`` (some background notes only with
one of them: matched by order + amount, or by reference alone). A scenario sets its own plan for
a note (``plan``) or sends a refund no note asks for (``send``). Times: Unix seconds; money:
Decimal, sent in the currency's minor units (ISO 4217 exponent: JPY has none).
"""
from __future__ import annotations

import importlib
import json
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from pipelines.records.currencies import exponent


class _World:
    """pipelines.demo.world, looked up when a case runs: that module imports this one."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module("pipelines.demo.world"), name)


W = _World()

MIN_S, HOUR_S, DAY_S = 60, 3600, 86400
PAYMENT_RULES = ["CREDIT_NOTE_NOT_PAID", "PAYMENT_WITHOUT_CREDIT_NOTE", "PAYMENT_AMOUNT_MISMATCH"]
FAILURE_REASONS = ["expired_or_canceled_card", "lost_or_stolen_card", "declined"]


def unix(us: int) -> int:
    """World time (integer microseconds) -> Unix seconds, as the provider's ``created``."""
    return us // W.US


def minor_units(amount: Decimal, currency: str) -> int:
    return int((amount * (Decimal(10) ** exponent(currency))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def send(w, created: int, amount: Decimal, currency: str, *, status: str = "succeeded", order_id: str | None = None,
         cn: str | None = None, raw_amount=None) -> str | None:
    """One provider refund object (None when created after the world's now)."""
    if created > unix(w.now):
        return None
    r = w.pay_rng
    k = len(w.payment_objects) + 1
    refund_id = f"re_demo{k:07d}{r.getrandbits(32):08x}"
    metadata = {}
    if order_id is not None:
        metadata["order_id"] = order_id
    if cn is not None:
        metadata["credit_note_number"] = cn
    metadata["integration"] = "shop-oms"
    obj = {"id": refund_id, "object": "refund",
           "amount": minor_units(amount, currency) if raw_amount is None else raw_amount,
           "balance_transaction": f"txn_{r.getrandbits(48):012x}", "charge": f"ch_{r.getrandbits(48):012x}",
           "created": created, "currency": currency.lower(), "metadata": metadata,
           "payment_intent": f"pi_{r.getrandbits(48):012x}",
           "reason": "requested_by_customer", "receipt_number": None, "status": status,
           "failure_reason": r.choice(FAILURE_REASONS) if status == "failed" else None}
    w.payment_objects.append(obj)
    w.counts["payment_refunds"] = w.counts.get("payment_refunds", 0) + 1
    return refund_id


def plan(w, cn: str, items: list[dict]) -> list[str | None]:
    """The provider's refunds for a credit note, replacing the default single payout. Each item:
    ``at`` (seconds after the note's release), ``amount`` (default the note's), ``status``,
    ``meta`` (``both``, ``order``, ``cn`` or ``none``: which metadata keys the shop set)."""
    note = w.notes[cn]
    w.payment_plans[cn] = items
    ids = w.payment_plan_ids.setdefault(cn, [])
    for item in items:
        meta = item.get("meta", "both")
        ids.append(send(w, unix(note["status_at"]) + item.get("at", HOUR_S), item.get("amount", note["amount"]),
                        note["currency"] or "EUR", status=item.get("status", "succeeded"),
                        order_id=note["order_id"] if meta in ("both", "order") else None,
                        cn=cn if meta in ("both", "cn") else None))
    return ids[-len(items):] if items else []


def write_payments(w) -> None:
    """Pays every credit note without a plan, then writes ``payments/refunds.jsonl``."""
    r = w.pay_rng
    for cn, note in list(w.notes.items()):
        if cn in w.payment_plans or note["status"] != "RELEASED":
            continue
        if note["rejected"]:  # the ledger line is unreadable, the money went out all the same
            send(w, unix(note["status_at"]) + r.randint(10 * MIN_S, 6 * HOUR_S), Decimal("12.50"),
                 note["currency"] or "EUR", order_id=note["order_id"], cn=cn)
            continue
        if note["amount"] <= 0:
            continue
        meta = "both"
        if note["order_known"] and not note["scenario"]:
            x = r.random()
            meta = "order" if x < 0.15 else "cn" if x < 0.20 else "both"
        send(w, unix(note["status_at"]) + r.randint(10 * MIN_S, 6 * HOUR_S), note["amount"], note["currency"] or "EUR",
             order_id=note["order_id"] if meta in ("both", "order") else None,
             cn=cn if meta in ("both", "cn") else None)
    folder = w.out / "payments"
    folder.mkdir(exist_ok=True)
    with open(folder / "refunds.jsonl", "w", encoding="utf-8", newline="\n") as f:
        for obj in w.payment_objects:
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
    w.counts.setdefault("payment_refunds", 0)


# --------------------------------------------------------------------------- cases

def _paid_note(w, days: float = -16, currency: str | None = None, **kw):
    """A fresh, cleanly returned and refunded order line; returns (order, flow, its note)."""
    o, ln = w.case_order(w.at(days - 4), currency=currency)
    f = W._clean_refunded(w, o, ln, 1, days, **kw)
    return o, f, w.notes[f.refunds[0]]


def case_credit_note_not_paid(w, i: int) -> None:
    sid, v = W._sid("CREDIT_NOTE_NOT_PAID", i), i % 3
    o, f, note = _paid_note(w)
    if v == 0:
        plan(w, note["cn"], [])
        kind, why = "no_payment", "the provider never paid"
    elif v == 1:
        plan(w, note["cn"], [{"status": "failed", "at": 2 * HOUR_S}])
        kind, why = "payment_failed", "the only attempt failed"
    else:
        plan(w, note["cn"], [{"status": "pending", "at": 3 * HOUR_S, "meta": "order"}])
        kind, why = "no_payment", "an attempt still pending"
    w.expect(sid, "CREDIT_NOTE_NOT_PAID", {"refund_reference": note["cn"], "kind": kind, "order_reference": o.ref},
             note["amount"], note=why)


def case_payment_without_credit_note(w, i: int) -> None:
    sid, v = W._sid("PAYMENT_WITHOUT_CREDIT_NOTE", i), i % 3
    if v == 0:  # a manual payout at the provider for an order nobody credited
        o = w.order(w.at(-15), w.random_items())
        amount = W.money(o.ug(o.lines[0]))
        rid = send(w, unix(w.at(-8)), amount, o.currency, order_id=o.ref)
        why = f"a payout for order {o.ref}, which has no credit note"
    elif v == 1:  # no metadata at all
        amount = Decimal(25 + i).quantize(Decimal("0.01"))
        rid = send(w, unix(w.at(-6)), amount, "EUR")
        why = "a payout without order or credit note"
    else:  # the note is paid by reference, and again a day later without one (a retry at the provider)
        o, f, note = _paid_note(w)
        amount = note["amount"]
        rid = plan(w, note["cn"], [{"at": HOUR_S}, {"at": DAY_S, "meta": "order"}])[1]
        why = f"{note['cn']} paid, then the same amount again for order {o.ref} without a reference"
    w.expect(sid, "PAYMENT_WITHOUT_CREDIT_NOTE", {"refund_reference": rid}, amount, note=why)


def case_payment_amount_mismatch(w, i: int) -> None:
    sid, v = W._sid("PAYMENT_AMOUNT_MISMATCH", i), i % 3
    o, f, note = _paid_note(w)
    amount = note["amount"]
    if v == 0:  # a retry that paid twice
        plan(w, note["cn"], [{"at": HOUR_S}, {"at": HOUR_S + 5 * MIN_S}])
        gap, why = amount, "paid twice (a retry)"
    elif v == 1:  # a partial payout
        part = W.money(amount * Decimal("0.6"))
        plan(w, note["cn"], [{"at": HOUR_S, "amount": part}])
        gap, why = amount - part, "paid 60%"
    else:  # 5.00 too much
        plan(w, note["cn"], [{"at": HOUR_S, "amount": amount + Decimal("5.00")}])
        gap, why = Decimal("5.00"), "paid 5.00 too much"
    w.expect(sid, "PAYMENT_AMOUNT_MISMATCH", {"refund_reference": note["cn"], "order_reference": o.ref}, gap, note=why)


def _look(w, kind: str, i: int, description: str, note: dict, f) -> None:
    """The note must not be called unpaid or mispaid, nor any of its provider refunds unmatched."""
    sid = W._la(kind, i)
    w.lookalike(sid, kind, description, ["CREDIT_NOTE_NOT_PAID", "PAYMENT_AMOUNT_MISMATCH"] + W.ORDER_LINE_MONEY,
                {**w.look_keys(f), "refund_reference": note["cn"], "credit_note_numbers": [note["cn"]]})
    for k, obj in enumerate(o for o in w.payment_objects if o["metadata"].get("credit_note_number") == note["cn"]
                            or o["id"] in w.payment_plan_ids.get(note["cn"], ())):
        w.lookalike(f"{sid}-refund-{k + 1}", kind, f"{description}: provider refund {obj['id']}",
                    ["PAYMENT_WITHOUT_CREDIT_NOTE"], {"refund_reference": obj["id"]})


def la_paid_in_two_parts(w, i: int) -> None:
    o, f, note = _paid_note(w)
    part = W.money(note["amount"] * Decimal("0.6"))
    plan(w, note["cn"], [{"at": HOUR_S, "amount": part}, {"at": DAY_S, "amount": note["amount"] - part}])
    _look(w, "paid_in_two_parts", i, f"{note['cn']} paid in two refunds that add up", note, f)


def la_part_then_remainder_by_amount(w, i: int) -> None:
    o, f, note = _paid_note(w)
    part = W.money(note["amount"] * Decimal("0.7"))
    plan(w, note["cn"], [{"at": HOUR_S, "amount": part},
                         {"at": DAY_S, "amount": note["amount"] - part, "meta": "order"}])
    _look(w, "paid_part_then_remainder_by_amount", i,
          f"{note['cn']} paid 70% by reference, the rest a day later with only the order id", note, f)


def la_failed_then_succeeded(w, i: int) -> None:
    o, f, note = _paid_note(w)
    plan(w, note["cn"], [{"at": HOUR_S, "status": "failed"},
                         {"at": 5 * HOUR_S, "meta": "order" if i % 2 == 0 else "both"}])
    _look(w, "failed_then_succeeded", i, f"{note['cn']}: a failed attempt, then a succeeded one", note, f)


def la_zero_decimal_currency(w, i: int) -> None:
    # A JPY order refunded in whole yen: the provider's amount has no minor unit (1999 = 1999 JPY).
    o, ln = w.case_order(w.at(-20), currency="JPY")
    whole = o.ug(ln).quantize(Decimal(1), rounding=ROUND_FLOOR)
    f = W._clean_refunded(w, o, ln, 1, -16, refund_amount=whole)
    note = w.notes[f.refunds[0]]
    plan(w, note["cn"], [{"at": 2 * HOUR_S}])
    _look(w, "zero_decimal_currency", i, f"{note['cn']}: {whole} JPY paid as amount {int(whole)}", note, f)


def la_reference_without_order_id(w, i: int) -> None:
    o, f, note = _paid_note(w)
    plan(w, note["cn"], [{"at": 2 * HOUR_S, "meta": "cn"}])
    _look(w, "reference_without_order_id", i, f"{note['cn']} paid with only the credit note number", note, f)


def la_payout_inside_window(w, i: int) -> None:
    o, f, note = _paid_note(w, -20)
    plan(w, note["cn"], [{"at": 3 * DAY_S - 10 * MIN_S, "meta": "order"}])
    _look(w, "payout_just_inside_window", i,
          f"{note['cn']} paid with only the order id, 3 days less 10 minutes after its release", note, f)


def la_released_2d_paid_after_t(w, i: int) -> None:
    o, f, note = _paid_note(w, -9, refund_at=w.at(-2, 0))
    plan(w, note["cn"], [{"at": 2 * DAY_S + 6 * HOUR_S}])
    _look(w, "released_2d_paid_after_T", i, f"{note['cn']} released 2 days before T, paid only after T", note, f)


def la_rejected_payment(w, i: int) -> None:
    # The provider's only refund for the note is malformed (amount "12.50", a string): rejected, and
    # the note is left unjudged rather than called unpaid.
    o, f, note = _paid_note(w)
    plan(w, note["cn"], [])
    rid = send(w, unix(note["status_at"]) + HOUR_S, note["amount"], note["currency"] or "EUR", order_id=o.ref,
               cn=note["cn"], raw_amount=f"{note['amount']:.2f}")
    w.expected_payment_rejects.append({"id": rid, "reason": "amount is not an integer"})
    _look(w, "rejected_provider_refund", i, f"{note['cn']}: the provider's refund {rid} has a text amount", note, f)


PAYMENT_CASES = [
    ("CREDIT_NOTE_NOT_PAID", case_credit_note_not_paid),
    ("PAYMENT_WITHOUT_CREDIT_NOTE", case_payment_without_credit_note),
    ("PAYMENT_AMOUNT_MISMATCH", case_payment_amount_mismatch),
]

PAYMENT_LOOKALIKES = [
    ("paid_in_two_parts", la_paid_in_two_parts, None),
    ("paid_part_then_remainder_by_amount", la_part_then_remainder_by_amount, None),
    ("failed_then_succeeded", la_failed_then_succeeded, None),
    ("zero_decimal_currency", la_zero_decimal_currency, None),
    ("reference_without_order_id", la_reference_without_order_id, None),
    ("payout_just_inside_window", la_payout_inside_window, None),
    ("released_2d_paid_after_T", la_released_2d_paid_after_t, None),
    ("rejected_provider_refund", la_rejected_payment, 1),
]
