-- QUANTITY_MISMATCH (order line): at least one matched WMS return, all of them Completed, and
-- received units differ from requested units. quantity_gap = received - requested.
SELECT
    'order_line:' || order_reference || '|' || coalesce(sku_key, '') AS grain_key,
    order_reference, order_line_reference, rma_references AS rma_reference, matched_returns AS return_reference,
    NULL AS tracking_id, sku, credit_notes AS refund_reference,
    received_units - requested_units AS quantity_gap,
    abs(received_units - requested_units) * unit_gross AS amount_at_risk,
    currency,
    json_object('received_units', received_units, 'requested_units', requested_units,
                'matched_returns', matched_returns, 'unit_gross', unit_gross) AS details,
    'The RMA (' || ids_text(rma_references, 'none') || ') requested ' || units_text(requested_units) || ' for order '
        || order_reference || ' / SKU ' || coalesce(sku, '?') || ', but the completed WMS return ('
        || ids_text(matched_returns, 'none') || ') received ' || units_text(received_units) || ': '
        || units_text(abs(received_units - requested_units)) || ' worth '
        || money_text(abs(received_units - requested_units) * unit_gross, currency) || ' apart.' AS explanation
FROM recon.order_line_positions
WHERE business_date = $business_date
  AND unjudged_reason IS NULL
  AND matched_return_count > 0
  AND completed_return_count = matched_return_count
  AND received_units <> requested_units
