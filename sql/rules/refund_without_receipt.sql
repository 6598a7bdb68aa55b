-- REFUND_WITHOUT_RECEIPT (order line): refunded units > received units (money out, goods not
-- in the warehouse).
SELECT
    'order_line:' || order_reference || '|' || coalesce(sku_key, '') AS grain_key,
    order_reference, order_line_reference, rma_references AS rma_reference, matched_returns AS return_reference,
    NULL AS tracking_id, sku, credit_notes AS refund_reference,
    refunded_units - received_units AS quantity_gap,
    (refunded_units - received_units) * unit_gross AS amount_at_risk,
    currency,
    json_object('refunded_units', refunded_units, 'received_units', received_units,
                'refunded_amount', refunded_amount, 'unit_gross', unit_gross,
                'matched_returns', matched_returns) AS details,
    'Refunded ' || units_text(refunded_units) || ' (' || ids_text(credit_notes, 'no credit note') || ', '
        || money_text(refunded_amount, currency) || ') for order ' || order_reference || ' / SKU ' || coalesce(sku, '?')
        || ', but the warehouse received ' || units_text(received_units) || ' (RMA ' || ids_text(rma_references, 'none')
        || ', WMS return ' || ids_text(matched_returns, 'none') || '): '
        || money_text((refunded_units - received_units) * unit_gross, currency) || ' paid for goods not received.' AS explanation
FROM recon.order_line_positions
WHERE business_date = $business_date
  AND unjudged_reason IS NULL
  AND refunded_units > received_units
