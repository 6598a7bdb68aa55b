-- REFUND_FOR_DAMAGED_GOODS (order line): received >= refunded units > received - damaged: the
-- refund covers units the warehouse graded Damaged (units still waiting for inspection do
-- not count as damaged).
SELECT
    'order_line:' || order_reference || '|' || coalesce(sku_key, '') AS grain_key,
    order_reference, order_line_reference, rma_references AS rma_reference, matched_returns AS return_reference,
    NULL AS tracking_id, sku, credit_notes AS refund_reference,
    refunded_units - (received_units - damaged_units) AS quantity_gap,
    (refunded_units - (received_units - damaged_units)) * unit_gross AS amount_at_risk,
    currency,
    json_object('refunded_units', refunded_units, 'received_units', received_units,
                'damaged_units', damaged_units, 'unit_gross', unit_gross) AS details,
    'Refunded ' || units_text(refunded_units) || ' (' || ids_text(credit_notes, 'no credit note') || ') for order '
        || order_reference || ' / SKU ' || coalesce(sku, '?') || ', but the warehouse graded ' || damaged_units || ' of the '
        || units_text(received_units) || ' received damaged (WMS return ' || ids_text(matched_returns, 'none')
        || '): ' || money_text((refunded_units - (received_units - damaged_units)) * unit_gross, currency)
        || ' refunded for damaged goods.' AS explanation
FROM recon.order_line_positions
WHERE business_date = $business_date
  AND unjudged_reason IS NULL
  AND received_units >= refunded_units
  AND refunded_units > received_units - damaged_units
