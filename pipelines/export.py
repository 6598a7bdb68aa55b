"""The finance export of one business date: ``<exports>/<D>/discrepancies.csv`` (open ones,
highest amount first), a Parquet copy, the workbook ``discrepancies.xlsx`` (pipelines/workbook.py) and ``trend.png`` (open discrepancies and amount at
risk per rule over the last 30 evaluated business dates). Files are written to a temporary
folder and moved into place, so a reader never sees a half-written export."""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from pipelines.config import RULES
from pipelines.movement import figures as movement_figures
from pipelines.reconcile import RATES_CTE
from pipelines.review import STATES
from pipelines.workbook import write_workbook

# Highest amount first, compared in the store currency (amounts of different currencies are
# never compared as raw numbers); each row keeps its own amount and currency. The review columns
# are the current ones (what finance decided so far, recon.discrepancies).
OPEN_ON_DATE_SQL = "WITH " + RATES_CTE.strip() + """,
first_seen AS (
    SELECT discrepancy_id, min(business_date) AS first_detected_on
    FROM recon.discrepancy_detections WHERE business_date <= $d GROUP BY discrepancy_id
),
prev AS (
    SELECT p.discrepancy_id FROM recon.discrepancy_detections p
    WHERE p.business_date = (SELECT max(business_date) FROM recon.evaluated_dates WHERE business_date < $d)
)
SELECT
    t.discrepancy_id, t.rule, t.severity, t.business_date, f.first_detected_on,
    CAST(t.business_date - f.first_detected_on AS INTEGER) AS age_days,
    prev.discrepancy_id IS NOT NULL AS open_before,     -- detected on the previous evaluated date
    t.order_reference, t.order_line_reference, t.sku, t.rma_reference, t.return_reference, t.tracking_id,
    t.refund_reference, t.quantity_gap, t.amount_at_risk, t.currency,
    CAST(round(c.amount, 2) AS DECIMAL(18,2)) AS amount_store,
    t.explanation, coalesce(r.review_state, 'NEW') AS review_state, r.assignee, r.last_note,
    CAST(t.details AS VARCHAR) AS details
FROM recon.discrepancy_detections t JOIN first_seen f USING (discrepancy_id)
JOIN converted c ON c.business_date = t.business_date AND c.discrepancy_id = t.discrepancy_id
LEFT JOIN recon.discrepancies r ON r.discrepancy_id = t.discrepancy_id
LEFT JOIN prev ON prev.discrepancy_id = t.discrepancy_id
WHERE t.business_date = $d
ORDER BY c.amount DESC, t.rule, t.discrepancy_id
"""

# Detected on the previous evaluated date and not any more on D: what D resolved.
RESOLVED_ON_DATE_SQL = "WITH " + RATES_CTE.strip() + """,
prev AS (SELECT max(business_date) AS p FROM recon.evaluated_dates WHERE business_date < $d),
first_seen AS (
    SELECT discrepancy_id, min(business_date) AS first_detected_on
    FROM recon.discrepancy_detections WHERE business_date <= $d GROUP BY discrepancy_id
)
SELECT t.discrepancy_id, t.rule, t.severity, f.first_detected_on, t.business_date AS last_detected_on,
       t.order_reference, t.sku, t.rma_reference, t.return_reference, t.refund_reference,
       t.amount_at_risk, t.currency, CAST(round(c.amount, 2) AS DECIMAL(18,2)) AS amount_store, t.explanation,
       coalesce(r.review_state, 'NEW') AS review_state, r.assignee, r.last_note
FROM recon.discrepancy_detections t JOIN prev ON t.business_date = prev.p
JOIN first_seen f USING (discrepancy_id)
JOIN converted c ON c.business_date = t.business_date AND c.discrepancy_id = t.discrepancy_id
LEFT JOIN recon.discrepancies r ON r.discrepancy_id = t.discrepancy_id
WHERE EXISTS (SELECT 1 FROM recon.evaluated_dates WHERE business_date = $d)
  AND t.discrepancy_id NOT IN (SELECT discrepancy_id FROM recon.discrepancy_detections WHERE business_date = $d)
ORDER BY c.amount DESC, t.rule, t.discrepancy_id
"""

# The CSV's headers (the finance file since the first version), in order.
CSV_COLUMNS = {
    "discrepancy_id": "Discrepancy ID", "rule": "Rule", "severity": "Severity", "business_date": "Business date",
    "first_detected_on": "First detected on", "order_reference": "Order", "order_line_reference": "Order line",
    "sku": "SKU", "rma_reference": "RMA", "return_reference": "WMS return", "tracking_id": "Tracking number",
    "refund_reference": "Credit notes", "quantity_gap": "Quantity gap", "amount_at_risk": "Amount at risk",
    "currency": "Currency", "amount_store": "Amount at risk (store currency)", "details": "Details",
    "explanation": "Explanation",
    "review_state": "Review state", "assignee": "Assignee", "last_note": "Note",
}


def csv_frame(typed: pl.DataFrame) -> pl.DataFrame:
    """The open rows as the CSV shows them: dates as YYYY-MM-DD, money as exact decimal text."""
    return typed.select(
        pl.col(c).dt.strftime("%Y-%m-%d").alias(h) if c in ("business_date", "first_detected_on")
        else pl.col(c).cast(pl.Utf8).alias(h) if c in ("amount_at_risk", "amount_store")
        else pl.col(c).alias(h)
        for c, h in CSV_COLUMNS.items())


TREND_SQL = "WITH " + RATES_CTE.strip() + """,
dates AS (
    SELECT business_date FROM recon.evaluated_dates WHERE business_date <= $d
    ORDER BY business_date DESC LIMIT 30
)
SELECT d.business_date, t.rule, count(t.discrepancy_id) AS open_count,
       CAST(round(coalesce(sum(t.amount), 0), 2) AS DECIMAL(18,2)) AS amount_at_risk
FROM dates d JOIN converted t USING (business_date)
GROUP BY ALL ORDER BY 1, 2
"""

# Per evaluated date of the chart: discrepancies detected on it and not on the previous evaluated
# date (new: first seen or detected again), and those detected on the previous one but not on it
# (resolved).
MOVEMENT_TREND_SQL = """
WITH dates AS (
    SELECT business_date, lag(business_date) OVER (ORDER BY business_date) AS prev
    FROM recon.evaluated_dates WHERE business_date <= $d
),
shown AS (SELECT * FROM dates ORDER BY business_date DESC LIMIT 30),
prev_rows AS (
    SELECT s.business_date, p.discrepancy_id
    FROM shown s JOIN recon.discrepancy_detections p ON p.business_date = s.prev
),
cur_rows AS (
    SELECT c.business_date, c.discrepancy_id
    FROM shown s JOIN recon.discrepancy_detections c ON c.business_date = s.business_date
),
resolved AS (
    SELECT business_date, count(*) AS n FROM prev_rows ANTI JOIN cur_rows USING (business_date, discrepancy_id)
    GROUP BY 1
),
new AS (  -- open on the date and not on the one before (first seen, or detected again)
    SELECT business_date, count(*) AS n FROM cur_rows ANTI JOIN prev_rows USING (business_date, discrepancy_id)
    GROUP BY 1
)
SELECT s.business_date, coalesce(new.n, 0) AS new_count, coalesce(resolved.n, 0) AS resolved_count
FROM shown s LEFT JOIN new USING (business_date) LEFT JOIN resolved USING (business_date)
ORDER BY 1
"""


def movement_trend(con: duckdb.DuckDBPyConnection, d: date) -> pl.DataFrame:
    return con.execute(MOVEMENT_TREND_SQL, {"d": d}).pl()


# A cell starting with one of these is a formula to Excel (formula injection: a SKU or tracking
# number "=HYPERLINK(...)"); OWASP's advice: prefix it with a single quote so it shows as text.
FORMULA_START = r"^[=+\-@\t\r]"
NUMERIC_COLUMNS = ("Amount at risk", "Amount at risk (store currency)", "Quantity gap")


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Every text cell that a spreadsheet would read as a formula, prefixed with ' (numbers kept)."""
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c, dtype in frame.schema.items() if dtype == pl.Utf8 and c not in NUMERIC_COLUMNS)


def open_on_date(con: duckdb.DuckDBPyConnection, d: date, store_currency: str = "EUR") -> pl.DataFrame:
    """The discrepancies open on date d, typed (DATE, DECIMAL), highest amount first."""
    return con.execute(OPEN_ON_DATE_SQL, {"d": d, "store_currency": store_currency}).pl()


def resolved_on_date(con: duckdb.DuckDBPyConnection, d: date, store_currency: str = "EUR") -> pl.DataFrame:
    return con.execute(RESOLVED_ON_DATE_SQL, {"d": d, "store_currency": store_currency}).pl()


def trend(con: duckdb.DuckDBPyConnection, d: date, store_currency: str = "EUR") -> pl.DataFrame:
    """Open discrepancies and amount at risk (store currency) per rule over the last 30 evaluated dates."""
    return con.execute(TREND_SQL, {"d": d, "store_currency": store_currency}).pl()


def write_export(con: duckdb.DuckDBPyConnection, export_dir: Path, d: date, store_currency: str = "EUR",
                 severities: dict[str, str] | None = None) -> dict:
    typed = open_on_date(con, d, store_currency)
    resolved = resolved_on_date(con, d, store_currency)
    figures = movement_figures(typed, resolved, list(RULES), severities or {}, STATES)
    frame = csv_frame(typed)
    trend_frame = trend(con, d, store_currency)
    moves = movement_trend(con, d)
    export_dir.mkdir(parents=True, exist_ok=True)
    final = export_dir / d.isoformat()
    remove_stale_staging(export_dir, d)
    staging = Path(tempfile.mkdtemp(prefix=f".{d.isoformat()}-", dir=export_dir))
    try:
        neutralise_formulas(frame).write_csv(staging / "discrepancies.csv")
        frame.write_parquet(staging / "discrepancies.parquet")
        series = write_trend_chart(trend_frame, staging / "trend.png", d, store_currency, moves,
                                   [(label, n) for label, n, _ in figures.ageing])
        write_workbook(staging / "discrepancies.xlsx", d, store_currency, typed, resolved, figures,
                       staging / "trend.png", STATES)
        if final.exists():
            old = export_dir / f".{d.isoformat()}-old-{os.getpid()}"
            os.replace(final, old)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {"csv": final / "discrepancies.csv", "parquet": final / "discrepancies.parquet",
            "chart": final / "trend.png", "workbook": final / "discrepancies.xlsx", "rows": frame.height,
            "trend": trend_frame, "chart_series": series, "figures": figures, "new_high": new_high_items(typed)}


def new_high_items(typed: pl.DataFrame) -> list[dict]:
    """The HIGH discrepancies new on the date (not open the date before), highest amount first."""
    rows = typed.filter(~pl.col("open_before") & (pl.col("severity") == "HIGH"))
    return [{"id": r["discrepancy_id"], "rule": r["rule"], "amount": str(r["amount_at_risk"]),
             "currency": r["currency"], "explanation": r["explanation"]} for r in rows.iter_rows(named=True)]


def remove_stale_staging(export_dir: Path, d: date) -> list[str]:
    """Staging (``.<D>-xxxx``) and replaced (``.<D>-old-<pid>``) folders of date D left by a run
    killed while exporting (``kill -9`` skips the cleanup): removed before D is written again.
    Runs of one date never export at once (the warehouse pool), so none of them is in use."""
    removed = []
    for stale in export_dir.glob(f".{d.isoformat()}-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale.name)
    return removed


def write_trend_chart(frame: pl.DataFrame, path: Path, d: date, store_currency: str = "EUR",
                      moves: pl.DataFrame | None = None, ageing: list[tuple[str, int]] | None = None) -> list[str]:
    """Open count and amount at risk with one line per rule that fired, the movement (new and
    resolved per date) and the open discrepancies of D by age; returns the rules drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted(frame["rule"].unique().to_list()) if frame.height else []
    dates = sorted(frame["business_date"].unique().to_list()) if frame.height else [d]
    fig = plt.figure(figsize=(11, 11))
    grid = fig.add_gridspec(4, 1, height_ratios=[3, 3, 2, 1.4])
    ax_count = fig.add_subplot(grid[0])
    ax_amount = fig.add_subplot(grid[1], sharex=ax_count)
    ax_moves = fig.add_subplot(grid[2], sharex=ax_count)
    ax_age = fig.add_subplot(grid[3])
    colours = plt.get_cmap("tab20").colors
    markers = "osD^vP*Xhp<>8"
    for i, rule in enumerate(rules):
        style = {"color": colours[(2 * i) % 20 if i < 10 else (2 * i - 19) % 20], "marker": markers[i % len(markers)]}
        part = frame.filter(pl.col("rule") == rule)
        by_date = {r["business_date"]: r for r in part.iter_rows(named=True)}
        counts = [by_date[x]["open_count"] if x in by_date else 0 for x in dates]
        amounts = [float(by_date[x]["amount_at_risk"]) if x in by_date else 0.0 for x in dates]
        ax_count.plot(dates, counts, label=rule, **style)
        ax_amount.plot(dates, amounts, label=rule, **style)
    ax_count.set_ylabel("open discrepancies")
    ax_amount.set_ylabel(f"amount at risk ({store_currency})")
    ax_count.set_title(f"Returns reconciliation - last {len(dates)} business dates up to {d.isoformat()}")
    if rules:
        ax_count.legend(fontsize="small", ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax_count.text(0.5, 0.5, "no discrepancies", ha="center", transform=ax_count.transAxes)
    if moves is not None and moves.height:
        import matplotlib.dates as mdates
        x = mdates.date2num(moves["business_date"].to_list())
        ax_moves.bar(x - 0.2, moves["new_count"].to_list(), width=0.4, label="new", color="#d62728")
        ax_moves.bar(x + 0.2, moves["resolved_count"].to_list(), width=0.4, label="resolved", color="#2ca02c")
        ax_moves.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax_moves.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, len(x) // 10)))
        ax_moves.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    ax_moves.set_ylabel("new / resolved")
    if ageing:
        labels = [label for label, _ in ageing]
        counts = [n for _, n in ageing]
        ax_age.barh(labels, counts, color="#1f77b4")
        for y, n in enumerate(counts):
            ax_age.text(n, y, f" {n}", va="center", fontsize="small")
        ax_age.invert_yaxis()
    ax_age.set_title(f"open on {d.isoformat()} by age since first detected", fontsize="small")
    for label in ax_count.get_xticklabels() + ax_amount.get_xticklabels():
        label.set_visible(False)
    for label in ax_moves.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return rules
