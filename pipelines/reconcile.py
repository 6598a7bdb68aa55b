"""Runs the SQL of the canonical and reconciliation layers for one business date.

Each step deletes the business date's rows of its table and inserts them again from the
SQL file named after the table (``sql/core/build_<table>.sql``, ``sql/recon/build_<table>.sql``,
``sql/rules/<rule>.sql``) inside the caller's transaction.
"""
from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import polars as pl

from pipelines.config import PAYMENT_RULES, RULES, ReconConfig
from pipelines.errors import InputMissing
from pipelines.partitions import as_of
from pipelines.resources.warehouse import run_sql, run_sql_file
from pipelines.retention import WORKING_TABLES, record_build, require_working_rows
from pipelines.settings import SQL_DIR

CORE_TABLES = ("order_lines", "data_issues", "rma_lines", "wms_returns", "wms_return_units", "refund_lines",
               "credit_notes", "provider_refunds", "stock_adjustment_lines", "stock_levels")
RULE_COLUMNS = ("order_reference, order_line_reference, rma_reference, return_reference, tracking_id, sku, "
                "refund_reference, quantity_gap, amount_at_risk, currency, details, explanation")


def register_config_tables(con: duckdb.DuckDBPyConnection, cfg: ReconConfig) -> None:
    """The configured name maps as temp tables the SQL joins against."""
    tables = {
        "cfg_status_map": pl.DataFrame({"name": list(cfg.rma_status_map), "canonical": list(cfg.rma_status_map.values())}),
        "cfg_action_map": pl.DataFrame({"name": list(cfg.rma_action_map), "canonical": list(cfg.rma_action_map.values())}),
        "cfg_non_refund_actions": pl.DataFrame({"action": list(cfg.non_refund_actions)}, schema={"action": pl.Utf8}),
    }
    for name, frame in tables.items():
        con.register(f"_{name}", frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _{name}")
        con.unregister(f"_{name}")


def params(d: date, cfg: ReconConfig | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"business_date": d, "as_of": as_of(d)}
    if cfg is not None:
        out.update(cfg.sql_params())
    return out


def rebuild(con: duckdb.DuckDBPyConnection, layer: str, table: str, d: date, cfg: ReconConfig) -> int:
    """Replace ``<layer>.<table>`` rows of date d with the result of sql/<layer>/build_<table>.sql."""
    path = SQL_DIR / layer / f"build_{table}.sql"
    sql = path.read_text()
    if "raw.oc_" in sql:
        require_storefront_fetch(con, d)
    require_working_rows(con, d, sql.replace(f"{layer}.{table}", ""))
    register_config_tables(con, cfg)
    con.execute(f"DELETE FROM {layer}.{table} WHERE business_date = $d", {"d": d})
    run_sql_file(con, path, params(d, cfg))
    if f"{layer}.{table}" in WORKING_TABLES:
        record_build(con, f"{layer}.{table}", d)
    return con.execute(f"SELECT count(*) FROM {layer}.{table} WHERE business_date = $d", {"d": d}).fetchone()[0]


def require_storefront_fetch(con: duckdb.DuckDBPyConnection, d: date) -> None:
    """A date the storefront was never read for (a warehouse migrated from the per-date layout,
    or a canonical step run alone) would read an empty shop and report every return as a break:
    refuse it instead."""
    if con.execute("SELECT count(*) FROM state.storefront_fetches WHERE business_date = $d", {"d": d}).fetchone()[0] == 0:
        raise InputMissing(f"the storefront has not been read for {d}: run raw/oc_* for that date first "
                           f"(recon run --date {d} does)")


def rule_sql_path(rule: str):
    return SQL_DIR / "rules" / f"{rule.lower()}.sql"


def detect(con: duckdb.DuckDBPyConnection, d: date, cfg: ReconConfig) -> dict[str, int]:
    """Run every rule file for date d into recon.discrepancy_detections; returns counts per rule."""
    require_working_rows(con, d)
    register_config_tables(con, cfg)
    con.execute("DELETE FROM recon.currency_rates WHERE business_date = $d", {"d": d})
    run_sql_file(con, SQL_DIR / "recon" / "build_currency_rates.sql", {"d": d})
    con.execute("DELETE FROM recon.discrepancy_detections WHERE business_date = $d", {"d": d})
    counts = {}
    for rule in RULES:
        body = rule_sql_path(rule).read_text().strip().rstrip(";")
        sql = f"""
            INSERT INTO recon.discrepancy_detections (business_date, discrepancy_id, rule, severity,
                   order_reference, order_line_reference, rma_reference, return_reference, tracking_id, sku,
                   refund_reference, quantity_gap, amount_at_risk, currency, details, explanation)
            SELECT $business_date, 'D-' || substr(md5($rule || '|' || grain_key), 1, 16), $rule, $severity,
                   order_reference, order_line_reference, rma_reference, return_reference, tracking_id, sku,
                   refund_reference, CAST(quantity_gap AS INTEGER),
                   CAST(round(CAST(amount_at_risk AS DECIMAL(24,8)), 2) AS DECIMAL(18,2)), currency,
                   CAST(details AS JSON), explanation
            FROM ({body}) AS hits"""
        run_sql(con, sql, {**params(d, cfg), "rule": rule, "severity": cfg.severities[rule]})
        counts[rule] = con.execute(
            "SELECT count(*) FROM recon.discrepancy_detections WHERE business_date = $d AND rule = $r",
            {"d": d, "r": rule}).fetchone()[0]
    return counts


def merge_discrepancies(con: duckdb.DuckDBPyConnection, d: date, evaluated_at) -> None:
    con.execute("DELETE FROM recon.evaluated_dates WHERE business_date = $d", {"d": d})
    con.execute("INSERT INTO recon.evaluated_dates VALUES ($d, $t)", {"d": d, "t": evaluated_at})
    run_sql_file(con, SQL_DIR / "recon" / "merge_into_discrepancies.sql", {"payment_rules": list(PAYMENT_RULES)})
    run_sql_file(con, SQL_DIR / "recon" / "merge_into_discrepancy_reviews.sql")


# Amounts in the summary and the chart are converted to the store currency at the latest
# order rate known for each currency by the date (recon.currency_rates, written with the
# detections: oc_order.currency_value, store -> order currency), so
# EUR, USD and GBP amounts are never added up as they are. The exports keep each order's currency.
RATES_CTE = """
rates AS (
    SELECT currency, rate FROM recon.currency_rates
    WHERE business_date = (SELECT max(business_date) FROM recon.currency_rates WHERE business_date <= $d)
),
converted AS (
    SELECT t.business_date, t.rule, t.discrepancy_id,
           CASE WHEN t.currency IS NULL OR t.currency = $store_currency THEN t.amount_at_risk
                ELSE coalesce(div_half_up_8(t.amount_at_risk, r.rate), t.amount_at_risk) END AS amount
    FROM recon.discrepancy_detections t LEFT JOIN rates r USING (currency)
)"""

SUMMARY_SQL = "WITH " + RATES_CTE.strip() + """,
cur AS (
    SELECT rule, count(*) AS n, sum(amount) AS amount FROM converted WHERE business_date = $d GROUP BY rule
),
prev_date AS (SELECT max(business_date) AS p FROM recon.evaluated_dates WHERE business_date < $d),
prev AS (
    SELECT rule, count(*) AS n, sum(amount) AS amount
    FROM converted, prev_date WHERE business_date = prev_date.p GROUP BY rule
),
rules AS (SELECT unnest($rules) AS rule)
SELECT r.rule, coalesce(c.n, 0) AS open_count, CAST(round(coalesce(c.amount, 0), 2) AS DECIMAL(18,2)) AS amount_at_risk,
       CASE WHEN (SELECT p FROM prev_date) IS NULL THEN NULL ELSE coalesce(c.n, 0) - coalesce(p.n, 0) END AS count_change,
       CASE WHEN (SELECT p FROM prev_date) IS NULL THEN NULL
            ELSE CAST(round(coalesce(c.amount, 0) - coalesce(p.amount, 0), 2) AS DECIMAL(18,2)) END AS amount_change
FROM rules r LEFT JOIN cur c USING (rule) LEFT JOIN prev p USING (rule)
ORDER BY amount_at_risk DESC, open_count DESC, r.rule
"""


def summary(con: duckdb.DuckDBPyConnection, d: date, store_currency: str = "EUR") -> pl.DataFrame:
    """Per rule: open count and amount at risk (store currency) on date d, and the change since
    the previous evaluated date."""
    return con.execute(SUMMARY_SQL, {"d": d, "rules": list(RULES), "store_currency": store_currency}).pl()


def summary_markdown(frame: pl.DataFrame) -> str:
    lines = ["| rule | open | amount at risk (store currency) | change (count) | change (amount) |",
             "|---|---:|---:|---:|---:|"]
    for row in frame.iter_rows(named=True):
        cc = "n/a" if row["count_change"] is None else f"{row['count_change']:+d}"
        ac = "n/a" if row["amount_change"] is None else f"{float(row['amount_change']):+,.2f}"
        lines.append(f"| {row['rule']} | {row['open_count']} | {float(row['amount_at_risk']):,.2f} | {cc} | {ac} |")
    return "\n".join(lines)


def summary_text(frame: pl.DataFrame) -> str:
    width = max(len(r) for r in RULES)
    out = [f"{'rule'.ljust(width)}  {'open':>5}  {'amount at risk*':>15}  {'change':>7}"]
    for row in frame.iter_rows(named=True):
        cc = "" if row["count_change"] is None else f"{row['count_change']:+d}"
        out.append(f"{row['rule'].ljust(width)}  {row['open_count']:>5}  {float(row['amount_at_risk']):>15,.2f}  {cc:>7}")
    total_n = sum(frame["open_count"])
    total_a = sum(float(a) for a in frame["amount_at_risk"])
    out.append(f"{'TOTAL'.ljust(width)}  {total_n:>5}  {total_a:>15,.2f}")
    out.append("* in the store currency, converted at the latest order rate; the export keeps each order's currency")
    return "\n".join(out)
