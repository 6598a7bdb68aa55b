"""The payment provider of a differential world: Stripe refund objects for the credit notes the
generator published (``payments/refunds.jsonl``), in random shapes around the contract's edges.

The amounts are what the generator meant to refund (the REFUNDED payments of the note's lines as
written), not what the ledger resolves to: a note whose version at T differs (PENDING again,
released after T, a conflicting version, a bad amount) is paid all the same, as a real provider
would. The reference and the pipeline must agree on what follows.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

SEC = 1_000_000
MIN, HOUR, DAY = 60 * SEC, 3600 * SEC, 86400 * SEC
EXPONENT = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0}


def _meant(note: dict) -> Decimal:
    total = Decimal(0)
    for _, amount, status in note["lines"]:
        if status != "REFUNDED" or amount is None:
            continue
        try:
            total += Decimal(amount)
        except (InvalidOperation, ValueError):
            continue
    return total


def add_payments(g) -> list[dict]:
    from .generator import CURRENCIES, NOW, T

    r = g.r
    out: list[dict] = []
    orders = {str(o["order_id"]): o for o in g.orders}

    def send(created_us: int, amount: Decimal, currency: str, *, status: str = "succeeded", order_id=None,
             cn=None, raw_amount=None) -> None:
        created = created_us // SEC
        if created_us > NOW:
            return
        minor = int((amount * (Decimal(10) ** EXPONENT[currency])).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        meta = {}
        if order_id is not None:
            meta["order_id"] = str(order_id)
        if cn is not None:
            meta["credit_note_number"] = cn
        out.append({"id": f"re_{g.seed}_{len(out) + 1:04d}", "object": "refund",
                    "amount": minor if raw_amount is None else raw_amount, "currency": currency.lower(),
                    "created": created, "status": status, "payment_intent": None, "charge": None,
                    "reason": None, "failure_reason": "declined" if status == "failed" else None, "metadata": meta})

    for note in g.notes:
        amount = _meant(note)
        if amount <= 0:
            continue
        order = orders.get(note["order_id"])
        currency = note["currency"] or (order["currency"] if order else "EUR")
        if r.random() < 0.03:
            currency = r.choice([c for c in CURRENCIES if c != currency])
        t0 = note["released"]
        cn, oid = note["cn"], note["order_id"]

        def meta(kind: str | None = None) -> dict:
            kind = kind or r.choices(["both", "order", "cn", "none"], weights=[60, 25, 10, 5])[0]
            return {"order_id": oid if kind in ("both", "order") else None, "cn": cn if kind in ("both", "cn") else None}

        x = r.random()
        if x < 0.50:    # paid once
            send(t0 + r.randint(0, 6 * 3600) * SEC, amount, currency, **meta())
        elif x < 0.57:  # never paid
            pass
        elif x < 0.64:  # a failed attempt, then a succeeded one
            send(t0 + MIN, amount, currency, status="failed", **meta("both"))
            send(t0 + r.choice([HOUR, DAY, 2 * DAY]), amount, currency, **meta())
        elif x < 0.69:  # only attempts that did not pay
            for status in r.sample(["failed", "canceled", "pending", "requires_action"], r.randint(1, 2)):
                send(t0 + r.randint(60, 7200) * SEC, amount, currency, status=status, **meta())
        elif x < 0.76:  # in two parts
            part = (amount * Decimal(r.choice(["0.3", "0.5", "0.7"]))).quantize(Decimal("0.01"))
            send(t0 + HOUR, part, currency, **meta("both"))
            send(t0 + r.choice([HOUR + MIN, DAY, 3 * DAY]), amount - part - r.choice([0, 0, Decimal("0.01"), 1]),
                 currency, **meta())
        elif x < 0.81:  # twice
            send(t0 + HOUR, amount, currency, **meta("both"))
            send(t0 + HOUR + r.choice([MIN, DAY]), amount, currency, **meta())
        elif x < 0.87:  # a little off
            off = r.choice([Decimal("0.01"), Decimal("-0.01"), Decimal("0.02"), Decimal("-0.02"), Decimal(5)])
            send(t0 + HOUR, amount + off, currency, **meta())
        elif x < 0.95:  # at the edges of the date window, by order + amount
            send(t0 + r.choice([3 * DAY, 3 * DAY + SEC, -3 * DAY, -3 * DAY - SEC, 2 * DAY]), amount, currency,
                 **meta("order"))
        else:           # created after T
            send(T + r.choice([SEC, HOUR]), amount, currency, **meta())

    for _ in range(r.choice([0, 0, 1, 2])):  # payouts nobody asked for, at the edges of payment_match_days
        order = r.choice(g.orders) if g.orders and r.random() < 0.6 else None
        send(T - r.choice([3 * DAY, 3 * DAY + SEC, 5 * DAY, DAY]), Decimal(r.randint(100, 9000)) / 100,
             order["currency"] if order else "EUR", order_id=order["order_id"] if order else None)
    if g.notes and r.random() < 0.2:  # a malformed object naming a note: rejected, and the note unjudged
        note = r.choice(g.notes)
        bad = r.choice([{"raw_amount": "12.50"}, {"raw_amount": 12.5}, {"raw_amount": True}])
        send(note["released"] + HOUR, Decimal(1), "EUR", order_id=note["order_id"], cn=note["cn"], **bad)
    return out
