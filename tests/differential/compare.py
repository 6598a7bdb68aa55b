"""Compare the pipeline's ``recon.discrepancy_detections`` rows with the reference findings of one world."""
from __future__ import annotations

import json
from decimal import Decimal

from .reference import GRAIN, Finding, cents

ORDER_LINE_RULES = {r for r, g in GRAIN.items() if g == ("order_reference", "sku")}


def pipeline_key(row: dict) -> tuple:
    details = row.get("details")
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            details = {}
    details = details or {}
    values = []
    for col in GRAIN[row["rule"]]:
        values.append(details.get("kind") if col == "kind" else row.get(col))
    return tuple(None if v is None else str(v) for v in values)


def compare(rows: list[dict], findings: list[Finding]) -> tuple[int, list[dict]]:
    """-> (number of discrepancies compared, disagreements). A disagreement is a dict with ``kind``
    (missing_in_pipeline, extra_in_pipeline, duplicate_in_pipeline, amount_at_risk, quantity_gap,
    order_line_reference), ``rule``, ``key`` and what each side said."""
    ours: dict[tuple, dict] = {}
    problems: list[dict] = []
    for row in rows:
        if row["rule"] not in GRAIN:
            continue   # rules outside the differential contract (e.g. payment rules)
        k = (row["rule"], pipeline_key(row))
        if k in ours:
            problems.append({"kind": "duplicate_in_pipeline", "rule": k[0], "key": list(k[1])})
            continue
        ours[k] = row
    ref = {(f.rule, tuple(None if v is None else str(v) for v in f.key)): f for f in findings}
    for k, f in sorted(ref.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        row = ours.get(k)
        if row is None:
            problems.append({"kind": "missing_in_pipeline", "rule": k[0], "key": list(k[1]),
                             "reference": {"amount_at_risk": str(f.amount_at_risk), "quantity_gap": f.quantity_gap}})
            continue
        got = None if row["amount_at_risk"] is None else cents(Decimal(str(row["amount_at_risk"])))
        if got != f.amount_at_risk:
            problems.append({"kind": "amount_at_risk", "rule": k[0], "key": list(k[1]),
                             "reference": str(f.amount_at_risk), "pipeline": None if got is None else str(got)})
        if f.quantity_gap is not None and row["quantity_gap"] != f.quantity_gap:
            problems.append({"kind": "quantity_gap", "rule": k[0], "key": list(k[1]),
                             "reference": f.quantity_gap, "pipeline": row["quantity_gap"]})
        if k[0] in ORDER_LINE_RULES and row.get("order_line_reference") != f.order_line_reference:
            problems.append({"kind": "order_line_reference", "rule": k[0], "key": list(k[1]),
                             "reference": f.order_line_reference, "pipeline": row.get("order_line_reference")})
    for k, row in sorted(ours.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if k not in ref:
            problems.append({"kind": "extra_in_pipeline", "rule": k[0], "key": list(k[1]),
                             "pipeline": {"amount_at_risk": str(row["amount_at_risk"]),
                                          "quantity_gap": row["quantity_gap"], "details": str(row.get("details"))[:300]}})
    return len(set(ref) | set(ours)), problems
