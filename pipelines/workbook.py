"""``<exports>/<D>/discrepancies.xlsx``: the workbook finance reviews (reconciliation.md).

Sheets: ``Summary`` (per rule and severity, movement, ageing, review states, the trend chart),
``Open discrepancies`` (frozen header, filters, money in its currency; only the review columns
are unlocked, the sheet is protected), ``Resolved today``, and a very hidden ``_exported`` copy of
the open sheet as written, which ``recon review import`` compares against to tell a person's edits
(and changed protected cells) from what was exported.

Every text cell is written with ``write_string`` (never read as a formula) and, when it starts
like a formula (= + - @ tab CR), with Excel's quote-prefix style, so it stays text even when the
cell is edited. Numbers are Excel numbers (IEEE doubles: exact to the cent below 10^13); the CSV
and Parquet keep the exact decimals.
"""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

from pipelines.movement import AGE_BUCKETS, Figures

OPEN_SHEET, RESOLVED_SHEET, SUMMARY_SHEET, EXPORTED_SHEET = "Open discrepancies", "Resolved today", "Summary", "_exported"
# (column of the typed frame, header, width); the review columns are the editable ones.
OPEN_COLUMNS = (
    ("discrepancy_id", "Discrepancy ID", 19), ("rule", "Rule", 26), ("severity", "Severity", 9),
    ("first_detected_on", "First detected on", 12), ("age_days", "Age (days)", 8),
    ("amount_at_risk", "Amount at risk", 15), ("currency", "Currency", 8),
    ("amount_store", "Amount at risk (store currency)", 17), ("explanation", "Explanation", 70),
    ("review_state", "Review state", 16), ("assignee", "Assignee", 14), ("last_note", "Note", 40),
    ("order_reference", "Order", 10), ("order_line_reference", "Order line", 12), ("sku", "SKU", 18),
    ("rma_reference", "RMA", 12), ("return_reference", "WMS return", 16), ("tracking_id", "Tracking number", 20),
    ("refund_reference", "Credit notes", 16), ("quantity_gap", "Quantity gap", 9), ("details", "Details", 60),
)
REVIEW_HEADERS = {"Review state": "review_state", "Assignee": "assignee", "Note": "note"}
RESOLVED_COLUMNS = (
    ("discrepancy_id", "Discrepancy ID", 19), ("rule", "Rule", 26), ("severity", "Severity", 9),
    ("first_detected_on", "First detected on", 12), ("last_detected_on", "Last detected on", 12),
    ("amount_at_risk", "Amount at risk", 15), ("currency", "Currency", 8),
    ("amount_store", "Amount at risk (store currency)", 17), ("explanation", "Explanation", 70),
    ("review_state", "Review state", 16), ("assignee", "Assignee", 14), ("last_note", "Note", 40), ("order_reference", "Order", 10), ("sku", "SKU", 18),
    ("rma_reference", "RMA", 12), ("return_reference", "WMS return", 16), ("refund_reference", "Credit notes", 16),
)
FORMULA_START = re.compile(r"^[=+\-@\t\r]")
MAX_CELL_TEXT = 32_000  # Excel's limit is 32,767 characters


def money_format(currency: str | None) -> str:
    """``#,##0.00 "EUR"``; a zero-decimal currency (ISO 4217: JPY, KRW...) without decimals. The
    register keeps cents (DECIMAL(18,2)), so a three-decimal currency shows two."""
    from pipelines.records.currencies import exponent

    code = re.sub(r"[^A-Z]", "", (currency or "").upper())[:3]
    digits = "#,##0" if code and exponent(code) == 0 else "#,##0.00"
    return f'{digits} "{code}"' if code else digits


class _Writer:
    """Cell writing with one format cache; every value goes through ``cell``."""

    def __init__(self, workbook):
        self.workbook = workbook
        self._formats: dict[tuple, object] = {}

    def fmt(self, **props):
        key = tuple(sorted(props.items()))
        if key not in self._formats:
            self._formats[key] = self.workbook.add_format(props)
        return self._formats[key]

    def cell(self, sheet, row: int, col: int, value, *, currency: str | None = None, money: bool = False,
             unlocked: bool = False, **style) -> None:
        base = {"locked": False} if unlocked else {}
        base.update(style)
        if value is None:
            sheet.write_blank(row, col, None, self.fmt(**base))
        elif isinstance(value, bool):
            sheet.write_boolean(row, col, value, self.fmt(**base))
        elif isinstance(value, date):
            sheet.write_datetime(row, col, value, self.fmt(num_format="yyyy-mm-dd", **base))
        elif isinstance(value, (int, float, Decimal)):
            if money:
                base["num_format"] = money_format(currency)
            sheet.write_number(row, col, float(value), self.fmt(**base))
        else:
            text = str(value)
            if len(text) > MAX_CELL_TEXT:
                text = text[:MAX_CELL_TEXT] + " ...(cut)"
            if FORMULA_START.match(text):
                base["quote_prefix"] = True
            sheet.write_string(row, col, text, self.fmt(**base))


def write_workbook(path: Path, d: date, store_currency: str, open_rows: pl.DataFrame,
                   resolved_rows: pl.DataFrame, figures: Figures, chart_png: Path | None, states: tuple[str, ...]) -> None:
    import xlsxwriter

    workbook = xlsxwriter.Workbook(str(path), {"strings_to_formulas": False, "strings_to_urls": False,
                                               "strings_to_numbers": False})
    w = _Writer(workbook)
    try:
        _summary_sheet(w, workbook.add_worksheet(SUMMARY_SHEET), d, store_currency, figures, chart_png)
        _table_sheet(w, workbook.add_worksheet(OPEN_SHEET), open_rows, OPEN_COLUMNS, store_currency,
                     editable=True, states=states)
        _table_sheet(w, workbook.add_worksheet(RESOLVED_SHEET), resolved_rows, RESOLVED_COLUMNS, store_currency)
        exported = workbook.add_worksheet(EXPORTED_SHEET)
        _table_sheet(w, exported, open_rows, OPEN_COLUMNS, store_currency)
        exported.very_hidden()
    finally:
        workbook.close()


def _table_sheet(w: _Writer, sheet, frame: pl.DataFrame, columns, store_currency: str, *,
                 editable: bool = False, states: tuple[str, ...] = ()) -> None:
    header = w.fmt(bold=True, bg_color="#DDE4EE", border=1, text_wrap=True, valign="top")
    for col, (_, title, width) in enumerate(columns):
        sheet.write_string(0, col, title, header)
        sheet.set_column(col, col, width)
    editable_cols = {i for i, (_, title, _) in enumerate(columns) if editable and title in REVIEW_HEADERS}
    for row, record in enumerate(frame.iter_rows(named=True), start=1):
        for col, (name, _, _) in enumerate(columns):
            money = name in ("amount_at_risk", "amount_store")
            currency = store_currency if name == "amount_store" else record.get("currency")
            w.cell(sheet, row, col, record.get(name), money=money, currency=currency,
                   unlocked=col in editable_cols)
    last_row = max(frame.height, 1)
    sheet.freeze_panes(1, 1)
    sheet.autofilter(0, 0, last_row, len(columns) - 1)
    if editable:
        state_col = next(i for i, (_, t, _) in enumerate(columns) if t == "Review state")
        # room below the data for nobody's rows: the validation covers the data rows only
        sheet.data_validation(1, state_col, last_row, state_col, {
            "validate": "list", "source": list(states), "error_title": "Review state",
            "error_message": "One of: " + ", ".join(states)})
        sheet.protect("", {"autofilter": True, "sort": True, "format_columns": True, "select_locked_cells": True,
                           "select_unlocked_cells": True})


def _summary_sheet(w: _Writer, sheet, d: date, store_currency: str, figures: Figures, chart_png: Path | None) -> None:
    title = w.fmt(bold=True, font_size=14)
    head = w.fmt(bold=True, bg_color="#DDE4EE", border=1)
    bold = w.fmt(bold=True)
    sheet.set_column(0, 0, 30)
    sheet.set_column(1, 10, 13)
    sheet.write_string(0, 0, f"Returns reconciliation - business date {d.isoformat()}", title)
    sheet.write_string(1, 0, f"Amounts in the store currency ({store_currency}), converted at the latest order "
                             "rate; the open sheet keeps each order's currency.")
    row = 3
    titles = ("Rule", "Severity", "Open", f"Amount at risk ({store_currency})", "New today", "Persisting",
              "Resolved today", *(f"Age {label}" for label, _, _ in AGE_BUCKETS))
    for col, text in enumerate(titles):
        sheet.write_string(row, col, text, head)
    for rule, severity, n, amount, new, persisting, resolved, ages in figures.per_rule:
        row += 1
        for col, value in enumerate((rule, severity, n, amount, new, persisting, resolved, *ages)):
            w.cell(sheet, row, col, value, money=col == 3, currency=store_currency)
    row += 1
    w.cell(sheet, row, 0, "Total", bold=True)
    for col in range(2, len(titles)):
        values = [(r[:7] + r[7])[col] for r in figures.per_rule]
        total = sum(values, Decimal("0")) if col == 3 else sum(values)
        w.cell(sheet, row, col, total, money=col == 3, currency=store_currency, bold=True)
    for heading, rows in (("Severity", figures.per_severity), ("Movement", figures.movement),
                          ("Age since first detected", figures.ageing), ("Review state (open)", figures.review_states)):
        row += 2
        for col, text in enumerate((heading, "Count", f"Amount ({store_currency})")):
            sheet.write_string(row, col, text, head)
        for label, n, amount in rows:
            row += 1
            w.cell(sheet, row, 0, label)
            w.cell(sheet, row, 1, n)
            w.cell(sheet, row, 2, amount, money=True, currency=store_currency)
    if chart_png is not None and chart_png.exists():
        sheet.insert_image(3, 12, str(chart_png), {"x_scale": 0.8, "y_scale": 0.8, "object_position": 3})
