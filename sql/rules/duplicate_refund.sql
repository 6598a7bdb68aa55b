-- DUPLICATE_REFUND (order line): two or more distinct credit notes refund the line, and the
-- refunded amount exceeds requested units x unit gross by more than the tolerance.
SELECT
    'order_line:' || order_reference || '|' || coalesce(sku_key, '') AS grain_key,
    order_reference, order_line_reference, rma_references AS rma_reference, matched_returns AS return_reference,
    NULL AS tracking_id, sku, credit_notes AS refund_reference,
    refunded_units - requested_units AS quantity_gap,
    refunded_amount - requested_units * unit_gross AS amount_at_risk,
    currency,
    json_object('credit_note_count', credit_note_count, 'refunded_amount', refunded_amount,
                'requested_units', requested_units, 'unit_gross', unit_gross,
                'allowed_amount', requested_units * unit_gross, 'tolerance', CAST($amount_tolerance AS DECIMAL(18,6))) AS details,
    'Refunded ' || money_text(refunded_amount, currency) || ' with ' || credit_note_count || ' credit notes ('
        || ids_text(credit_notes, 'none') || ') for order ' || order_reference || ' / SKU ' || coalesce(sku, '?')
        || ', but the RMA (' || ids_text(rma_references, 'none') || ') requested ' || units_text(requested_units)
        || ' worth ' || money_text(requested_units * unit_gross, currency) || ': '
        || money_text(refunded_amount - requested_units * unit_gross, currency) || ' refunded more than once.' AS explanation
FROM recon.order_line_positions
WHERE business_date = $business_date
  AND unjudged_reason IS NULL
  AND credit_note_count >= 2
  AND refunded_amount > requested_units * unit_gross + CAST($amount_tolerance AS DECIMAL(18,6))
