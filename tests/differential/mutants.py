"""How sharp are the random worlds? Mutants of the reference against the reference itself.

    .venv/bin/python -m tests.differential.mutants [--seeds 200]

Each mutant is the reference with one plausible slip (every occurrence of a pattern replaced) of the contract (a strict comparison made
inclusive, the wrong rounding, the wrong version chosen, ...). A mutant is "killed" on a world
when its findings differ from the reference's there: a pipeline with that slip would fail the
differential test on that world. Cheap (no pipeline run): the generator's power per semantic.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

from . import reference as R
from .compare import compare
from .generator import BUSINESS_DATE, generate

MUTANTS: dict[str, tuple[str, str]] = {
    "tolerance inclusive": ("p.refunded > p.requested * p.line.unit_gross + TOLERANCE",
                            "p.refunded >= p.requested * p.line.unit_gross + TOLERANCE"),
    "refunded units half-even": ("rounding=ROUND_HALF_UP))\n\n\n@dataclass", "rounding='ROUND_HALF_EVEN'))\n\n\n@dataclass"),
    "RMA created at T excluded": ("if created > self.T:\n                continue", "if created >= self.T:\n                continue"),
    "history at T excluded": ("rows_h = sorted(r for r in rows_h if r[0] <= self.T)",
                              "rows_h = sorted(r for r in rows_h if r[0] < self.T)"),
    "history tie: lowest id": ("rows_h = sorted(r for r in rows_h if r[0] <= self.T)",
                               "rows_h = sorted((r for r in rows_h if r[0] <= self.T), key=lambda r: (r[0], -r[1]))"),
    "history after T used": ("rows_h = sorted(r for r in rows_h if r[0] <= self.T)", "rows_h = sorted(rows_h)"),
    "refund SLA inclusive": ("max(completed) < w.before(REFUND_SLA_DAYS)", "max(completed) <= w.before(REFUND_SLA_DAYS)"),
    "transit inclusive": ("r.authorized_since < w.before(TRANSIT_DAYS)", "r.authorized_since <= w.before(TRANSIT_DAYS)"),
    "status lag inclusive": ("max(completed) < w.before(STATUS_LAG_DAYS)", "max(completed) <= w.before(STATUS_LAG_DAYS)"),
    "restock lag inclusive": ("not m.completed < w.before(RESTOCK_LAG_DAYS)", "not m.completed <= w.before(RESTOCK_LAG_DAYS)"),
    "tracking: first match in comment": ("tracking = found[-1].group(1)", "tracking = found[0].group(1)"),
    "tracking: earliest comment": ("for _t, _hid, _sid, comment in reversed(rows_h):",
                                   "for _t, _hid, _sid, comment in rows_h:"),
    "authorised since first ever": ("                    else:\n                        since = None",
                                    "                    else:\n                        pass"),
    "arrived at T excluded": ("arrived if arrived is not None and arrived <= self.T else None",
                              "arrived if arrived is not None and arrived < self.T else None"),
    "completed at T excluded": ("completed if completed is not None and completed <= self.T else None",
                                "completed if completed is not None and completed < self.T else None"),
    "unit grade from after T": ("(processed is None or processed > self.T)", "(processed is None)"),
    "UNKNOWN status not requested": ("sum(r.quantity for r in rmas if r.status not in CLOSED)",
                                     "sum(r.quantity for r in rmas if r.status not in CLOSED | {UNKNOWN})"),
    "requested not capped": ("requested = min(sum(r.quantity for r in rmas if r.status not in CLOSED), line.ordered)",
                             "requested = sum(r.quantity for r in rmas if r.status not in CLOSED)"),
    "credit note: last version in file order": ("body = by_date[max(dated)]", "body = list(by_date.values())[-1]"),
    "credit note: versions counted as notes": ('notes = len({rl.credit_note for rl in parts["refunds"]})',
                                               'notes = len(parts["refunds"])'),
    "foreign-currency refunds counted": ("return line if rl.currency == line.currency else None", "return line"),
    "unit gross not rounded to 8 places": (
        "ug = (gross / total_qty).quantize(Q8, rounding=ROUND_HALF_UP) if total_qty else Decimal(0)",
        "ug = (gross / total_qty) if total_qty else Decimal(0)"),
    "unit gross of the first row": ("gross = sum(((r[3] + r[4]) * cv * r[2] for r in rs), Decimal(0))",
                                    "gross = (rs[0][3] + rs[0][4]) * cv * total_qty"),
    "rejected records ignored (no taint)": ("        if line.order_ref in w.tainted_orders:\n            continue\n", ""),
    "every matching method, not the first": (
        "                if found:\n                    rma.matched, rma.method = found, method\n                    break",
        "                if found:\n                    rma.matched = list({id(x): x for x in rma.matched + found}.values())\n"
        "                    rma.method = rma.method or method"),
    "abandoned checkouts are orders": ("            if status == 0:   # abandoned checkout: not an order\n"
                                       "                continue\n", ""),
    "stock lookback includes its start": ("lookback_start < t <= w.T", "lookback_start <= t <= w.T"),
    "RMA model compared case-sensitively": (
        'line = self.lines.get((order_ref, (model or "").strip().lower()))',
        'line = self.lines.get((order_ref, (model or "").strip().lower()))\n'
        '            line = line if line is not None and line.sku == (model or "").strip() else None'),
    "RMA model not trimmed": ('line = self.lines.get((order_ref, (model or "").strip().lower()))',
                              'line = self.lines.get((order_ref, (model or "").lower()))'),
}


def as_rows(findings: list) -> list[dict]:
    rows = []
    for f in findings:
        row = {"rule": f.rule, "order_line_reference": f.order_line_reference, **dict(zip(R.GRAIN[f.rule], f.key)),
               "amount_at_risk": f.amount_at_risk, "quantity_gap": f.quantity_gap, "details": {}}
        if f.rule == "STATUS_MISMATCH":
            row["details"] = {"kind": row.pop("kind")}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    args = ap.parse_args(argv)
    src = Path(R.__file__).read_text()
    base_dir = Path(tempfile.mkdtemp(prefix="differential-mutants-"))
    worlds = []
    for seed in range(args.seeds):
        generate(base_dir / str(seed), seed)
        worlds.append(base_dir / str(seed))
    expected = {w: R.evaluate(w, BUSINESS_DATE) for w in worlds}
    survivors = 0
    for name, (old, new) in MUTANTS.items():
        if old not in src:
            print(f"{name:42s} (no longer applies to reference.py)")
            continue
        mod = types.ModuleType(f"mutant_{len(name)}")
        sys.modules[mod.__name__] = mod  # dataclasses look their module up
        exec(compile(src.replace(old, new), f"<mutant {name}>", "exec"), mod.__dict__)
        killed = 0
        for w in worlds:
            try:
                found = mod.evaluate(w, BUSINESS_DATE)
            except Exception:  # noqa: BLE001 - a crash also tells the worlds apart
                killed += 1
                continue
            killed += bool(compare(as_rows(found), expected[w])[1])
        survivors += killed == 0
        print(f"{name:42s} killed on {killed:4d}/{len(worlds)} worlds")
    return 0 if not survivors else 1


if __name__ == "__main__":
    sys.exit(main())
