"""The finance export of one business date: ``<exports>/<D>/discrepancies.csv`` (open ones,
highest amount first), a Parquet copy and ``trend.png`` (open discrepancies and amount at
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

from pipelines.reconcile import RATES_CTE

# Highest amount first, compared in the store currency (amounts of different currencies are
# never compared as raw numbers); each row keeps its own amount and currency.
OPEN_ON_DATE_SQL = "WITH " + RATES_CTE.strip() + """,
first_seen AS (
    SELECT discrepancy_id, min(business_date) AS first_detected_on
    FROM recon.discrepancy_detections WHERE business_date <= $d GROUP BY discrepancy_id
)
SELECT
    t.discrepancy_id AS "Discrepancy ID", t.rule AS "Rule", t.severity AS "Severity",
    strftime(t.business_date, '%Y-%m-%d') AS "Business date",
    strftime(f.first_detected_on, '%Y-%m-%d') AS "First detected on",
    t.order_reference AS "Order", t.order_line_reference AS "Order line", t.sku AS "SKU",
    t.rma_reference AS "RMA", t.return_reference AS "WMS return", t.tracking_id AS "Tracking number",
    t.refund_reference AS "Credit notes", t.quantity_gap AS "Quantity gap",
    printf('%.2f', t.amount_at_risk) AS "Amount at risk", t.currency AS "Currency",
    CAST(round(c.amount, 2) AS VARCHAR) AS "Amount at risk (store currency)",
    CAST(t.details AS VARCHAR) AS "Details"
FROM recon.discrepancy_detections t JOIN first_seen f USING (discrepancy_id)
JOIN converted c ON c.business_date = t.business_date AND c.discrepancy_id = t.discrepancy_id
WHERE t.business_date = $d
ORDER BY c.amount DESC, t.rule, t.discrepancy_id
"""

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
    return con.execute(OPEN_ON_DATE_SQL, {"d": d, "store_currency": store_currency}).pl()


def trend(con: duckdb.DuckDBPyConnection, d: date, store_currency: str = "EUR") -> pl.DataFrame:
    """Open discrepancies and amount at risk (store currency) per rule over the last 30 evaluated dates."""
    return con.execute(TREND_SQL, {"d": d, "store_currency": store_currency}).pl()


def write_export(con: duckdb.DuckDBPyConnection, export_dir: Path, d: date, store_currency: str = "EUR") -> dict:
    frame = open_on_date(con, d, store_currency)
    trend_frame = trend(con, d, store_currency)
    export_dir.mkdir(parents=True, exist_ok=True)
    final = export_dir / d.isoformat()
    remove_stale_staging(export_dir, d)
    staging = Path(tempfile.mkdtemp(prefix=f".{d.isoformat()}-", dir=export_dir))
    try:
        neutralise_formulas(frame).write_csv(staging / "discrepancies.csv")
        frame.write_parquet(staging / "discrepancies.parquet")
        series = write_trend_chart(trend_frame, staging / "trend.png", d, store_currency)
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
            "chart": final / "trend.png", "rows": frame.height, "trend": trend_frame, "chart_series": series}


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


def write_trend_chart(frame: pl.DataFrame, path: Path, d: date, store_currency: str = "EUR") -> list[str]:
    """Two panels (open count, amount at risk) with one line per rule that fired; returns the rules drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted(frame["rule"].unique().to_list()) if frame.height else []
    dates = sorted(frame["business_date"].unique().to_list()) if frame.height else [d]
    fig, (ax_count, ax_amount) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
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
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return rules
