-- REFUND_CURRENCY_MISMATCH (credit note x order line): a money-out refund line on an order line
-- the storefront has carries a currency that differs from its order's currency_code. Its amount
-- cannot be compared with the order's prices, so the line is left out of every other order-line
-- rule (recon.order_line_positions counts only refunds in the order's currency). Amount: the
-- line's amount, in the refund's currency.
SELECT
    'refund_line:' || f.credit_note_number || '|' || f.order_line_reference AS grain_key,
    f.order_reference, f.order_line_reference, f.rma_reference, NULL AS return_reference,
    NULL AS tracking_id, f.sku, f.credit_note_number AS refund_reference,
    NULL AS quantity_gap, f.amount AS amount_at_risk, f.currency,
    json_object('refund_currency', f.currency, 'order_currency', f.order_currency, 'amount', f.amount,
                'refund_type', f.refund_type, 'credit_note_date', f.credit_note_date) AS details,
    'Credit note ' || f.credit_note_number || ' refunded ' || money_text(f.amount, f.currency) || ' for order '
        || f.order_reference || ' / SKU ' || coalesce(f.sku, '?') || ', but the order was paid in '
        || coalesce(f.order_currency, '?') || ': the refund is in the wrong currency.' AS explanation
FROM core.refund_lines f
WHERE f.business_date = $business_date
  AND f.is_money_out
  AND f.order_line_reference <> 'SHIPPING'
  AND f.sku_key IS NOT NULL
  AND f.currency IS DISTINCT FROM f.order_currency
