-- ORPHAN_REFUND (credit note x order line): a money-out refund line names an order line the
-- storefront does not have (for that order). Shipping refunds name no order line.
SELECT
    'refund_line:' || f.credit_note_number || '|' || f.order_line_reference AS grain_key,
    f.order_reference, f.order_line_reference, f.rma_reference, NULL AS return_reference,
    NULL AS tracking_id, NULL AS sku, f.credit_note_number AS refund_reference,
    NULL AS quantity_gap, f.amount AS amount_at_risk, f.currency,
    json_object('refund_type', f.refund_type, 'credit_note_date', f.credit_note_date,
                'order_known', EXISTS (SELECT 1 FROM core.order_lines o
                                       WHERE o.business_date = $business_date
                                         AND o.order_reference = f.order_reference)) AS details
FROM core.refund_lines f
WHERE f.business_date = $business_date
  AND f.is_money_out
  AND f.order_line_reference <> 'SHIPPING'
  AND NOT EXISTS (SELECT 1 FROM core.order_lines l
                  WHERE l.business_date = $business_date
                    AND l.order_line_reference = f.order_line_reference
                    AND l.order_reference = f.order_reference)
