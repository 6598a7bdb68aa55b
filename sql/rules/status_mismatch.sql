-- STATUS_MISMATCH (RMA line): a matched WMS return Completed for more than status_lag_days
-- while the RMA is still REQUESTED/AUTHORIZED (kind wms_completed_rma_open), or the RMA is
-- COMPLETED while no matched WMS return is Completed (kind rma_completed_wms_not_completed).
-- An RMA whose status the map does not know is not judged (status is null), nor one of an
-- order, or with a reference, named by a rejected record (core.data_issues).
WITH m AS (
    SELECT m.rma_reference,
           string_agg(m.return_reference, ',' ORDER BY m.return_reference) AS returns,
           max(w.completed_at) AS latest_completed_at,
           count(*) FILTER (WHERE w.state = 'Completed') AS completed
    FROM recon.rma_matches m
    JOIN core.wms_returns w ON w.business_date = $business_date AND w.return_reference = m.return_reference
    WHERE m.business_date = $business_date
    GROUP BY m.rma_reference
)
SELECT
    'rma_line:' || r.rma_reference AS grain_key,
    r.order_reference, r.order_line_reference, r.rma_reference, m.returns AS return_reference,
    r.tracking_id, r.sku, NULL AS refund_reference, NULL AS quantity_gap, 0 AS amount_at_risk,
    l.currency,
    json_object('kind', CASE WHEN r.status = 'COMPLETED' THEN 'rma_completed_wms_not_completed'
                             ELSE 'wms_completed_rma_open' END,
                'rma_status', r.status, 'rma_status_name', r.status_name,
                'wms_latest_completed_at', m.latest_completed_at, 'status_lag_days', $status_lag_days) AS details,
    CASE WHEN r.status = 'COMPLETED'
             THEN 'RMA ' || r.rma_reference || ' (order ' || coalesce(r.order_reference, '?') || ' / SKU ' || coalesce(r.sku, '?')
                  || ') is ' || coalesce(r.status_name, r.status) || ' in the shop, but '
                  || CASE WHEN m.returns IS NULL THEN 'no warehouse return matches it'
                          ELSE 'its warehouse return ' || ids_text(m.returns, '') || ' is not completed' END || '.'
             ELSE 'The warehouse completed return ' || ids_text(m.returns, '?') || ' on '
                  || strftime(m.latest_completed_at, '%Y-%m-%d') || ', but RMA ' || r.rma_reference || ' (order '
                  || coalesce(r.order_reference, '?') || ' / SKU ' || coalesce(r.sku, '?') || ') is still '
                  || coalesce(r.status_name, r.status) || ' in the shop after more than ' || days_text($status_lag_days) || '.'
        END AS explanation
FROM core.rma_lines r
LEFT JOIN m ON m.rma_reference = r.rma_reference
LEFT JOIN core.order_lines l
       ON l.business_date = $business_date AND l.order_reference = r.order_reference AND l.sku_key = r.sku_key
WHERE r.business_date = $business_date
  AND NOT EXISTS (
      SELECT 1 FROM core.data_issues i
      WHERE i.business_date = $business_date AND i.source <> 'payment_refunds'
        AND (i.order_reference = r.order_reference OR i.rma_reference = r.rma_reference
             OR i.return_reference = r.rma_reference))
  AND ((r.status IN ('REQUESTED', 'AUTHORIZED')
        AND m.latest_completed_at < $as_of - to_days(CAST($status_lag_days AS INTEGER)))
    OR (r.status = 'COMPLETED' AND coalesce(m.completed, 0) = 0))
