-- RMA_NOT_RECEIVED (RMA line): AUTHORIZED for more than transit_days and no matched WMS return
-- has arrived. An RMA whose status the map does not know is not judged (status is null), nor
-- one of an order, or with a reference, named by a rejected record (core.data_issues).
SELECT
    'rma_line:' || r.rma_reference AS grain_key,
    r.order_reference, r.order_line_reference, r.rma_reference,
    (SELECT string_agg(m.return_reference, ',' ORDER BY m.return_reference) FROM recon.rma_matches m
      WHERE m.business_date = $business_date AND m.rma_reference = r.rma_reference) AS return_reference,
    r.tracking_id, r.sku, NULL AS refund_reference,
    r.quantity AS quantity_gap,
    r.quantity * l.unit_gross AS amount_at_risk,
    l.currency,
    json_object('authorized_since', r.authorized_since, 'transit_days', $transit_days,
                'quantity', r.quantity, 'unit_gross', l.unit_gross, 'source', r.source) AS details,
    'RMA ' || r.rma_reference || ' (order ' || coalesce(r.order_reference, '?') || ' / SKU ' || coalesce(r.sku, '?') || ', '
        || units_text(r.quantity) || ', tracking ' || coalesce(r.tracking_id, 'none') || ') has been authorised since '
        || strftime(r.authorized_since, '%Y-%m-%d') || ', but no parcel arrived at the warehouse within ' || days_text($transit_days)
        || ': ' || money_text(r.quantity * l.unit_gross, l.currency) || ' at risk.' AS explanation
FROM core.rma_lines r
LEFT JOIN core.order_lines l
       ON l.business_date = $business_date AND l.order_reference = r.order_reference AND l.sku_key = r.sku_key
WHERE r.business_date = $business_date
  AND r.status = 'AUTHORIZED'
  AND r.authorized_since < $as_of - to_days(CAST($transit_days AS INTEGER))
  AND NOT EXISTS (
      SELECT 1 FROM recon.rma_matches m
      JOIN core.wms_returns w ON w.business_date = $business_date AND w.return_reference = m.return_reference
      WHERE m.business_date = $business_date AND m.rma_reference = r.rma_reference AND w.arrived_at IS NOT NULL)
  AND NOT EXISTS (
      SELECT 1 FROM core.data_issues i
      WHERE i.business_date = $business_date AND i.source <> 'payment_refunds'
        AND (i.order_reference = r.order_reference OR i.rma_reference = r.rma_reference
             OR i.return_reference = r.rma_reference))
