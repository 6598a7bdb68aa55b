"""Ageing and movement of one business date's discrepancies: new today, persisting, resolved today,
age buckets by first detection and review states, per rule. The workbook's Summary, the run's
Dagster metadata and ``recon run``'s output all print these figures (one computation)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl

# Days since first detected (reconciliation.md: 0-1, 2-7, 8-30, over 30 days).
AGE_BUCKETS = (("0-1 days", 0, 1), ("2-7 days", 2, 7), ("8-30 days", 8, 30), ("over 30 days", 31, None))
SEVERITIES = ("HIGH", "MEDIUM", "LOW")


@dataclass
class Figures:
    """Counts and store-currency amounts of one date; every list holds (label, count, amount)."""
    # rule, severity, open, amount, new, persisting, resolved, open count per age bucket
    per_rule: list[tuple[str, str, int, Decimal, int, int, int, tuple[int, ...]]] = field(default_factory=list)
    per_severity: list[tuple[str, int, Decimal]] = field(default_factory=list)
    movement: list[tuple[str, int, Decimal]] = field(default_factory=list)
    ageing: list[tuple[str, int, Decimal]] = field(default_factory=list)
    review_states: list[tuple[str, int, Decimal]] = field(default_factory=list)

    def as_metadata(self) -> dict:
        def block(rows):
            return {label: {"count": n, "amount": str(a)} for label, n, a in rows}
        return {"movement": block(self.movement), "ageing": block(self.ageing),
                "review_states": block(self.review_states),
                "per_rule": {r: {"open": n, "new": new, "persisting": per, "resolved": res, "amount": str(a),
                                 "ageing": dict(zip((b[0] for b in AGE_BUCKETS), ages))}
                             for r, _, n, a, new, per, res, ages in self.per_rule}}

    def text(self, currency: str = "") -> str:
        def line(title, rows):
            return f"{title}: " + ", ".join(f"{label} {n} ({a:,.2f}{' ' + currency if currency else ''})"
                                            for label, n, a in rows)
        return "\n".join([line("Movement", self.movement), line("Ageing", self.ageing),
                          line("Review", [r for r in self.review_states if r[1]])])


def _bucket(low: int, high: int | None) -> pl.Expr:
    return pl.col("age_days") >= low if high is None else pl.col("age_days").is_between(low, high)


def _sum(frame: pl.DataFrame) -> Decimal:
    if frame.height == 0:
        return Decimal("0.00")
    total = frame["amount_store"].sum()
    return Decimal(str(total)) if total is not None else Decimal("0.00")


def figures(open_rows: pl.DataFrame, resolved_rows: pl.DataFrame, rules: list[str],
            severities: dict[str, str], states: tuple[str, ...]) -> Figures:
    """From the typed open and resolved-today frames of pipelines/export.py."""
    new = open_rows.filter(~pl.col("open_before"))   # first seen, or detected again after a resolution
    out = Figures()
    for rule in rules:
        part = open_rows.filter(pl.col("rule") == rule)
        out.per_rule.append((rule, severities.get(rule, ""), part.height, _sum(part),
                             new.filter(pl.col("rule") == rule).height,
                             part.filter(pl.col("open_before")).height,
                             resolved_rows.filter(pl.col("rule") == rule).height,
                             tuple(part.filter(_bucket(low, high)).height for _, low, high in AGE_BUCKETS)))
    for sev in SEVERITIES:
        part = open_rows.filter(pl.col("severity") == sev)
        out.per_severity.append((sev, part.height, _sum(part)))
    persisting = open_rows.filter(pl.col("open_before"))
    out.movement = [("new today", new.height, _sum(new)), ("persisting", persisting.height, _sum(persisting)),
                    ("resolved today", resolved_rows.height, _sum(resolved_rows))]
    for label, low, high in AGE_BUCKETS:
        part = open_rows.filter(_bucket(low, high))
        out.ageing.append((label, part.height, _sum(part)))
    for state in states:
        part = open_rows.filter(pl.col("review_state") == state)
        out.review_states.append((state, part.height, _sum(part)))
    return out


def figures_markdown(f: Figures, store_currency: str) -> str:
    lines = [f"| | count | amount ({store_currency}) |", "|---|---:|---:|"]
    for title, rows in (("movement", f.movement), ("age", f.ageing), ("review", f.review_states)):
        lines += [f"| {title}: {label} | {n} | {a:,.2f} |" for label, n, a in rows]
    return "\n".join(lines)
