-- ORPHAN_REFUND (credit note x order line): a money-out refund line names an order line the
-- storefront does not have: no oc_order_product row of that id in that order, or the order is
-- unknown or an abandoned checkout. Shipping refunds name no order line. A line of an order
-- named by a rejected record is not judged (the rejected record may be the order line).
SELECT
    'refund_line:' || f.credit_note_number || '|' || f.order_line_reference AS grain_key,
    f.order_reference, f.order_line_reference, f.rma_reference, NULL AS return_reference,
    NULL AS tracking_id, NULL AS sku, f.credit_note_number AS refund_reference,
    NULL AS quantity_gap, f.amount AS amount_at_risk, f.currency,
    json_object('refund_type', f.refund_type, 'credit_note_date', f.credit_note_date, 'amount', f.amount,
                'order_known', f.order_currency IS NOT NULL) AS details,
    'Credit note ' || f.credit_note_number || ' paid out ' || money_text(f.amount, f.currency) || ' for order '
        || coalesce(f.order_reference, '?') || ' line ' || coalesce(f.order_line_reference, '?') || ', but '
        || CASE WHEN f.order_currency IS NULL THEN 'the shop has no such order'
                ELSE 'the order has no such line' END || ': money out against a line the shop does not have.' AS explanation
FROM core.refund_lines f
WHERE f.business_date = $business_date
  AND f.is_money_out
  AND f.order_line_reference <> 'SHIPPING'
  AND f.sku_key IS NULL
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date AND i.source <> 'payment_refunds' AND i.order_reference = f.order_reference)
