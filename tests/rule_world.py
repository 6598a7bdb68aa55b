"""A tiny hand-built world for rule edge tests: one helper call per raw record (defaults for
the rest), then the real canonical / reconciliation SQL on a real DuckDB file.

    w = RuleWorld(tmp_path)
    w.order(100)
    w.line(1001, 100, "TS-RED", price="10.00")
    w.rma(7, 100, "TS-RED", quantity=1)
    w.refund("CN-1", 100, 1001, "10.00")
    hits = w.run()              # rebuild every core / recon table in order, then detect
    w.only(hits, "OVER_REFUND")

Every timestamp defaults relative to T = D+1 00:00:00 UTC (``w.T``). Money is given as text
(or Decimal) and stored exactly.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.config import load_config
from pipelines.partitions import as_of
from pipelines.payment_matching import match_payments
from pipelines.records.currencies import exponent
from pipelines.reconcile import CORE_TABLES, detect, rebuild
from pipelines.resources.warehouse import connect

D = date(2026, 3, 10)
T = as_of(D)                      # 2026-03-11 00:00:00
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)

RECON_TABLES = ("rma_matches", "order_line_positions")
DETECTION_COLUMNS = ("discrepancy_id", "rule", "order_reference", "order_line_reference", "rma_reference",
                     "return_reference", "tracking_id", "sku", "refund_reference", "quantity_gap",
                     "amount_at_risk", "currency", "details", "explanation")


def dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


class RuleWorld:
    def __init__(self, tmp_path: Path, d: date = D, cfg=None):
        self.d = d
        self.T = as_of(d)
        self.cfg = cfg or load_config()
        self.con = connect(Path(tmp_path) / "warehouse.duckdb")
        self._wms_versions: dict[str, datetime] = {}
        self._wms_fetched: dict[str, date] = {}
        self._ids = iter(range(1, 10**9))

    # ------------------------------------------------------------------ raw inserts
    def _insert(self, table: str, **cols: Any) -> None:
        if table.startswith("raw.oc_"):
            # storefront tables are versions: the row is in force from this date's fetch on
            fetched_at = datetime.combine(cols.pop("business_date"), datetime.min.time()) + DAY + 6 * timedelta(hours=1)
            if not self.con.execute("SELECT 1 FROM state.storefront_fetches WHERE business_date = $1",
                                    [self.d]).fetchall():
                self.con.execute("INSERT INTO state.storefront_fetches VALUES ($1, $2)", [self.d, fetched_at])
            cols.update(valid_from=fetched_at, row_hash=f"rule-world-{next(self._ids)}")
        names = ", ".join(cols)
        marks = ", ".join(f"${i + 1}" for i in range(len(cols)))
        values = [str(v) if isinstance(v, Decimal) else v for v in cols.values()]
        self.con.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)

    def order(self, order_id: int, *, currency: str = "EUR", currency_value: Any = "1", status_id: int = 5,
              status_name: str = "Complete", date_added: datetime | None = None) -> None:
        """raw.oc_orders; status_id 0 is an abandoned checkout."""
        self._insert("raw.oc_orders", business_date=self.d, order_id=order_id, store_id=0, customer_id=1,
                     total=dec("0"), order_status_id=status_id, order_status_name=status_name,
                     currency_code=currency, currency_value=dec(currency_value),
                     date_added=date_added or self.T - 60 * DAY, date_modified=date_added or self.T - 60 * DAY)

    def line(self, order_product_id: int, order_id: int, model: str = "TS-RED", *, quantity: int = 1,
             price: Any = "10.00", tax: Any = "0", product_id: int = 1) -> None:
        """raw.oc_order_lines (price and tax per unit, store currency)."""
        self._insert("raw.oc_order_lines", business_date=self.d, order_product_id=order_product_id,
                     order_id=order_id, product_id=product_id, name=model, model=model, quantity=quantity,
                     price=dec(price), tax=dec(tax), total=dec(price) * quantity)

    def product(self, product_id: int, model: str, *, quantity: int, price: Any = "10.00") -> None:
        """raw.oc_products: the storefront's stock as read by the run."""
        self._insert("raw.oc_products", business_date=self.d, product_id=product_id, model=model,
                     quantity=quantity, price=dec(price), subtract=1, status=1, date_modified=self.T - DAY)

    def rma(self, return_id: int, order_id: int, model: str = "TS-RED", *, quantity: int = 1,
            status: str = "Awaiting Products", at: datetime | None = None, product_id: int = 1,
            action: str | None = None, action_id: int | None = None, tracking: str | None = None,
            history: bool = True) -> None:
        """raw.oc_returns (created ``at``, default T - 10 days) and, unless history=False, one
        history row with the same status at the same instant (with ``tracking`` if given)."""
        at = at or self.T - 10 * DAY
        if action is not None and action_id is None:
            action_id = 3
        self._insert("raw.oc_returns", business_date=self.d, return_id=return_id, order_id=order_id,
                     product_id=product_id, customer_id=1, product=model, model=model, quantity=quantity,
                     opened=0, return_reason_id=1, return_reason_name="Faulty",
                     return_action_id=action_id or 0, return_action_name=action,
                     return_status_id=1, return_status_name=status, date_ordered=(at - 20 * DAY).date(),
                     date_added=at, date_modified=at)
        if history:
            self.history(return_id, status, at, tracking=tracking)

    def history(self, return_id: int, status: str, at: datetime, *, tracking: str | None = None) -> None:
        """raw.oc_return_history: one status change (tracking = the number extracted from the comment)."""
        self._insert("raw.oc_return_history", business_date=self.d, return_history_id=next(self._ids),
                     return_id=return_id, return_status_id=1, return_status_name=status, notify=0,
                     tracking_id=tracking, date_added=at)

    def wms_return(self, reference: str, order_reference: Any = None, *, tracking: str | None = None,
                   created_at: datetime | None = None, arrived_at: datetime | None = None,
                   completed_at: datetime | None = None, updated_at: datetime | None = None,
                   fetched_on: date | None = None, state: str | None = None) -> datetime:
        """raw.wms_returns: one fetched version (fetched on business date ``fetched_on``, default D).
        Returns its updated_at; units added after it belong to this version."""
        created_at = created_at or self.T - 5 * DAY
        updated_at = updated_at or max(t for t in (created_at, arrived_at, completed_at) if t is not None)
        if state is None:
            state = "Completed" if completed_at else "ArrivedToWarehouse" if arrived_at else "ReturnCreated"
        self._insert("raw.wms_returns", business_date=fetched_on or self.d, return_reference=reference,
                     source="Integration", sales_order_channel="opencart",
                     order_reference=None if order_reference is None else str(order_reference),
                     state=state, tracking_id=tracking, cargo_carrier="UPS", created_at=created_at,
                     updated_at=updated_at, arrived_at=arrived_at, completed_at=completed_at,
                     courier_request=None, tag=None, fetched_via="poll",
                     fetched_at=datetime.combine(fetched_on or self.d, datetime.min.time()) + DAY + 6 * timedelta(hours=1))
        self._wms_versions[reference] = updated_at
        self._wms_fetched[reference] = fetched_on or self.d
        return updated_at

    def unit(self, reference: str, sku: str = "TS-RED", state: str = "Undamaged", *,
             processed_at: datetime | None = None, version: datetime | None = None,
             fetched_on: date | None = None) -> None:
        """raw.wms_return_line_items: one unit of the latest version added of ``reference``
        (or of ``version``); processed at T - 2 days unless given."""
        if processed_at is None and state != "WaitingToBeProcessed":
            processed_at = self.T - 2 * DAY
        n = next(self._ids)
        self._insert("raw.wms_return_line_items", business_date=fetched_on or self._wms_fetched[reference],
                     return_reference=reference, return_updated_at=version or self._wms_versions[reference],
                     line_item_reference=f"{reference}-LI{n}", sku=sku, processed_at=processed_at, state=state,
                     damaged_state="Broken" if state == "Damaged" else None, serial_number=None)

    def adjustment(self, transaction_number: str, tag: str | None, *, sku: str = "TS-RED", found: int = 1,
                   lost: int = 0, completed_at: datetime | None = None) -> None:
        """raw.wms_stock_adjustments + one raw.wms_stock_adjustment_lines row."""
        self._insert("raw.wms_stock_adjustments", business_date=self.d, adjustment_id=transaction_number,
                     transaction_number=transaction_number, transaction_type="Return",
                     completed_at=completed_at or self.T - DAY, tag=tag)
        self._insert("raw.wms_stock_adjustment_lines", business_date=self.d, transaction_number=transaction_number,
                     line_id="1", product_name=sku, sku=sku, lost_amount=lost, found_amount=found,
                     put_in_quarantine_amount=0, release_from_quarantine_amount=0)

    def stock(self, sku: str, available: int) -> None:
        """raw.wms_stocks: the WMS's available stock as read by the run."""
        self._insert("raw.wms_stocks", business_date=self.d, sku=sku, name=sku, total_stock_amount=available,
                     available_stock=available, reserved_stock=0, received_item_amount=0, damaged_item_amount=0,
                     expired_amount=0, lost_item_amount=0, updated_at=self.T - DAY, read_at=self.T + 6 * timedelta(hours=1))

    def refund(self, credit_note: str, order_id: Any, order_line_reference: Any, amount: Any, *,
               currency: str | None = None, status: str = "RELEASED", version_date: datetime | None = None,
               credit_note_date: datetime | None = None, refund_type: str = "Return",
               version_key: str | None = None, rma_reference: str | None = None,
               source_file: str = "refunds.jsonl", source_line: int | None = None) -> None:
        """raw.refund_lines (stored once, not per date): one version of a credit note's line;
        amount is the money refunded (cost_gross of REFUNDED payments)."""
        credit_note_date = credit_note_date or self.T - 2 * DAY
        version_date = version_date or credit_note_date
        n = next(self._ids)
        self._insert("raw.refund_lines", credit_note_number=credit_note,
                     version_key=version_key or f"{credit_note}-v{n}", version_date=version_date,
                     order_line_reference=str(order_line_reference), order_line="1",
                     order_reference=str(order_id), store_id="1", sales_channel_id="1",
                     credit_note_date=credit_note_date, rma_reference=rma_reference, refund_type=refund_type,
                     refund_reason="Return", status_code=status, status_date=version_date, currency=currency,
                     line_reason=None, refunded_gross=dec(amount), refunded_net=dec(amount), refunded_vat=dec(0),
                     total_gross=dec(amount), payment_count=1, message_id=f"m{n}", source_file=source_file,
                     source_line=source_line if source_line is not None else n, delivery_count=1)

    def payment(self, refund_id: str, amount: Any, *, currency: str = "EUR", created: datetime | None = None,
                status: str = "succeeded", order_id: Any = None, credit_note: str | None = None) -> None:
        """raw.payment_refunds: a provider refund as read by D's run (amount in the currency, stored
        with its minor units); the date counts as read from the provider (state.payment_polls)."""
        amount = dec(amount)
        n = next(self._ids)
        self._insert("raw.payment_refunds", business_date=self.d, refund_id=refund_id,
                     amount_minor=int(amount.scaleb(exponent(currency))), amount=amount, currency=currency,
                     created=created or self.T - 2 * DAY, status=status, payment_intent=None, charge=None,
                     reason=None, failure_reason="declined" if status == "failed" else None,
                     order_id=None if order_id is None else str(order_id), credit_note_number=credit_note,
                     row_hash=f"h{n}", fetched_at=self.T + 6 * timedelta(hours=1))
        self.payments_read()

    def payments_read(self) -> None:
        """The provider was read for D (its rules judge the date) even when it had no refund."""
        if not self.con.execute("SELECT 1 FROM state.payment_polls WHERE business_date = $1", [self.d]).fetchall():
            self._insert("state.payment_polls", business_date=self.d, created_gte=None, created_lte=self.T,
                         refunds_read=0, versions_written=0, rejects=0, pages=1, fetched_at=self.T + 6 * timedelta(hours=1))

    def reject(self, source: str, reason: str = "invalid record", *, record_key: str | None = None,
               order_reference: Any = None, order_line_reference: Any = None, rma_reference: str | None = None,
               return_reference: str | None = None, credit_note_number: str | None = None,
               business_date: date | None = None) -> None:
        """recon.rejects: a record that failed validation, with the grain it names."""
        self._insert("recon.rejects", source=source, record_key=record_key, reason=reason, payload="{}",
                     business_date=business_date or self.d,
                     order_reference=None if order_reference is None else str(order_reference),
                     order_line_reference=None if order_line_reference is None else str(order_line_reference),
                     rma_reference=rma_reference, return_reference=return_reference,
                     credit_note_number=credit_note_number)

    # ------------------------------------------------------------------ run and read
    def run(self) -> list[dict]:
        """Rebuild every core and recon table of D in the canonical order, run every rule, and
        return recon.discrepancy_detections of D as dicts (amount_at_risk a Decimal)."""
        for table in CORE_TABLES:
            rebuild(self.con, "core", table, self.d, self.cfg)
        for table in RECON_TABLES:
            rebuild(self.con, "recon", table, self.d, self.cfg)
        match_payments(self.con, self.d, self.cfg)
        detect(self.con, self.d, self.cfg)
        rows = self.con.execute(
            f"SELECT {', '.join(DETECTION_COLUMNS)} FROM recon.discrepancy_detections WHERE business_date = $d "
            "ORDER BY rule, discrepancy_id", {"d": self.d}).fetchall()
        out = []
        for row in rows:
            hit = dict(zip(DETECTION_COLUMNS, row))
            hit["details"] = json.loads(hit["details"]) if isinstance(hit["details"], str) else hit["details"]
            out.append(hit)
        return out

    def query(self, sql: str, params: dict | None = None) -> list[tuple]:
        return self.con.execute(sql, params or {}).fetchall()

    @staticmethod
    def only(hits: list[dict], rule: str, **keys: Any) -> list[dict]:
        """The detections of one rule (optionally with given key values)."""
        return [h for h in hits if h["rule"] == rule and all(h[k] == v for k, v in keys.items())]

    @staticmethod
    def rules(hits: list[dict]) -> list[str]:
        return sorted(h["rule"] for h in hits)

    def close(self) -> None:
        self.con.close()


def describe(hits: list[dict]) -> str:
    """One line per detection, for assertion messages."""
    return "\n".join(f"  {h['rule']} order={h['order_reference']} line={h['order_line_reference']} "
                     f"rma={h['rma_reference']} ret={h['return_reference']} sku={h['sku']} "
                     f"refund={h['refund_reference']} gap={h['quantity_gap']} amount={h['amount_at_risk']} "
                     f"{h['currency']}" for h in hits) or "  (none)"
