-- RECEIVED_NOT_REFUNDED (order line): accepted units > refunded units, the matched WMS return
-- has been Completed for more than refund_sla_days (the latest completion among the matched
-- returns), and no RMA of the line settles it otherwise (Replacement Sent / Credit Issued); a line
-- whose RMA action the map does not know is not judged.
SELECT
    'order_line:' || order_reference || '|' || coalesce(sku_key, '') AS grain_key,
    order_reference, order_line_reference, rma_references AS rma_reference, matched_returns AS return_reference,
    NULL AS tracking_id, sku, credit_notes AS refund_reference,
    accepted_units - refunded_units AS quantity_gap,
    (accepted_units - refunded_units) * unit_gross AS amount_at_risk,
    currency,
    json_object('accepted_units', accepted_units, 'refunded_units', refunded_units,
                'refunded_amount', refunded_amount, 'unit_gross', unit_gross,
                'latest_completed_at', latest_completed_at, 'refund_sla_days', $refund_sla_days) AS details,
    'The warehouse accepted ' || units_text(accepted_units) || ' for order ' || order_reference || ' / SKU '
        || coalesce(sku, '?') || ' (WMS return ' || ids_text(matched_returns, 'none') || ', completed '
        || coalesce(strftime(latest_completed_at, '%Y-%m-%d'), '?') || '), but only ' || units_text(refunded_units)
        || ' refunded (' || ids_text(credit_notes, 'no credit note') || ') after more than ' || days_text($refund_sla_days)
        || ': ' || money_text((accepted_units - refunded_units) * unit_gross, currency) || ' still owed to the customer.' AS explanation
FROM recon.order_line_positions
WHERE business_date = $business_date
  AND unjudged_reason IS NULL
  AND accepted_units > refunded_units
  AND completed_return_count > 0
  AND latest_completed_at < $as_of - to_days(CAST($refund_sla_days AS INTEGER))
  AND NOT has_non_refund_action
  AND NOT has_unknown_action
