-- REFERENCE_MISMATCH (WMS return): tied to an RMA by tracking number, but filed under another
-- order (salesOrderReferenceNumber differs from the RMA's order).
SELECT
    'wms_return:' || m.return_reference AS grain_key,
    min(m.wms_order_reference) AS order_reference, NULL AS order_line_reference,
    string_agg(DISTINCT m.rma_reference, ',' ORDER BY m.rma_reference) AS rma_reference,
    m.return_reference, min(m.wms_tracking_id) AS tracking_id, NULL AS sku, NULL AS refund_reference,
    NULL AS quantity_gap, 0 AS amount_at_risk, NULL AS currency,
    json_object('wms_order_reference', min(m.wms_order_reference),
                'rma_order_references', string_agg(DISTINCT m.rma_order_reference, ','),
                'match_method', 'tracking') AS details,
    'Warehouse return ' || m.return_reference || ' was matched to RMA '
        || string_agg(DISTINCT m.rma_reference, ', ' ORDER BY m.rma_reference) || ' by tracking number '
        || coalesce(min(m.wms_tracking_id), '?') || ', but it names order ' || coalesce(min(m.wms_order_reference), 'none')
        || ' where the RMA names order ' || coalesce(string_agg(DISTINCT m.rma_order_reference, ', '), 'none') || '.' AS explanation
FROM recon.rma_matches m
WHERE m.business_date = $business_date
  AND m.method = 'tracking'
  AND m.wms_order_reference IS DISTINCT FROM m.rma_order_reference
GROUP BY m.return_reference
