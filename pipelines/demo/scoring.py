"""Scores the pipeline's detections for a business date against a world's ground truth.

Grain keys per rule follow reconciliation.md; a case is identified by (rule, grain keys).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb

ORDER_LINE_RULES = ("DUPLICATE_REFUND", "OVER_REFUND", "REFUND_WITHOUT_RECEIPT", "REFUND_FOR_DAMAGED_GOODS",
                    "RECEIVED_NOT_REFUNDED", "QUANTITY_MISMATCH")
# An order line of the rules is (order reference, SKU): its discrepancy also lists the rows'
# order_product_ids ("9,10" for option variants), reported but not part of the case's identity.
GRAIN = {
    **{r: ("order_reference", "sku") for r in ORDER_LINE_RULES},
    "RMA_NOT_RECEIVED": ("rma_reference", "order_reference", "sku"),
    "STATUS_MISMATCH": ("rma_reference", "order_reference", "sku", "kind"),
    "ORPHAN_WMS_RETURN": ("return_reference",),
    "REFERENCE_MISMATCH": ("return_reference",),
    "RESTOCK_MISMATCH": ("return_reference", "sku"),
    "ORPHAN_REFUND": ("refund_reference", "order_line_reference"),
    "UNSYNCED_STOCK_ADJUSTMENT": ("sku",),
    "REFUND_CURRENCY_MISMATCH": ("refund_reference", "order_line_reference"),
    "CREDIT_NOTE_NOT_PAID": ("refund_reference", "kind"),
    "PAYMENT_WITHOUT_CREDIT_NOTE": ("refund_reference",),
    "PAYMENT_AMOUNT_MISMATCH": ("refund_reference",),
}


@dataclass
class Score:
    expected: dict[tuple, dict]
    actual: dict[tuple, dict]
    missed: list[tuple] = field(default_factory=list)
    extra: list[tuple] = field(default_factory=list)
    wrong_amount: list[tuple] = field(default_factory=list)

    @property
    def perfect(self) -> bool:
        return not (self.missed or self.extra or self.wrong_amount)

    def report(self) -> str:
        lines = [f"expected {len(self.expected)}, detected {len(self.actual)}, missed {len(self.missed)}, "
                 f"extra {len(self.extra)}, wrong amount {len(self.wrong_amount)}"]
        lines += [f"  missed {k} ({self.expected[k].get('note', '')})" for k in self.missed]
        lines += [f"  extra  {k} amount={self.actual[k]['amount']} details={self.actual[k]['details']}" for k in self.extra]
        lines += [f"  amount {k}: expected {self.expected[k]['amount']} got {self.actual[k]['amount']} "
                  f"details={self.actual[k]['details']}" for k in self.wrong_amount]
        return "\n".join(lines)


def case_key(rule: str, keys: dict) -> tuple:
    return (rule, *(str(keys.get(k)) if keys.get(k) is not None else None for k in GRAIN[rule]))


def expected_cases(ground_truth: dict) -> dict[tuple, dict]:
    out = {}
    for case in ground_truth["cases"]:
        out[case_key(case["rule"], case["keys"])] = {
            "amount": Decimal(case["amount_at_risk"]), "quantity_gap": case.get("quantity_gap"),
            "note": case.get("note", ""), "case_id": case["case_id"]}
    return out


def detected_cases(con: duckdb.DuckDBPyConnection, d: date) -> dict[tuple, dict]:
    rows = con.execute(
        "SELECT rule, order_reference, order_line_reference, rma_reference, return_reference, sku, "
        "refund_reference, amount_at_risk, quantity_gap, CAST(details AS VARCHAR) "
        "FROM recon.discrepancy_detections WHERE business_date = $d", {"d": d}).fetchall()
    out = {}
    for rule, order, line, rma, ret, sku, refund, amount, gap, details in rows:
        parsed = json.loads(details) if details else {}
        keys = {"order_reference": order, "order_line_reference": line, "rma_reference": rma,
                "return_reference": ret, "sku": sku, "refund_reference": refund, "kind": parsed.get("kind")}
        out[case_key(rule, keys)] = {"amount": Decimal(str(amount)), "quantity_gap": gap, "details": details}
    return out


def score(con: duckdb.DuckDBPyConnection, d: date, ground_truth: dict | Path) -> Score:
    if isinstance(ground_truth, Path):
        ground_truth = json.loads(ground_truth.read_text())
    expected = expected_cases(ground_truth)
    actual = detected_cases(con, d)
    s = Score(expected, actual)
    s.missed = sorted(set(expected) - set(actual), key=str)
    s.extra = sorted(set(actual) - set(expected), key=str)
    s.wrong_amount = sorted((k for k in set(expected) & set(actual)
                             if abs(expected[k]["amount"] - actual[k]["amount"]) > Decimal("0.005")), key=str)
    return s
