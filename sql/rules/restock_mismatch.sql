-- RESTOCK_MISMATCH (WMS return x SKU): Completed for more than restock_lag_days and the net
-- units restocked by adjustments tagged with the return differ from its Undamaged units of
-- that SKU (a missing restock, or damaged goods put back on sale). gap = restocked - undamaged.
-- A return named by a rejected stock adjustment (its tag) is not judged.
WITH undamaged AS (
    SELECT return_reference, sku, count(*) FILTER (WHERE state = 'Undamaged') AS units
    FROM core.wms_return_units WHERE business_date = $business_date
    GROUP BY ALL
),
restocked AS (
    SELECT return_reference, sku, sum(net_units) AS units,
           string_agg(DISTINCT transaction_number, ',' ORDER BY transaction_number) AS transactions
    FROM core.stock_adjustment_lines
    WHERE business_date = $business_date AND return_reference IS NOT NULL
    GROUP BY ALL
),
per_sku AS (
    SELECT coalesce(u.return_reference, r.return_reference) AS return_reference,
           coalesce(u.sku, r.sku) AS sku,
           coalesce(u.units, 0) AS undamaged, coalesce(r.units, 0) AS restocked, r.transactions
    FROM undamaged u FULL OUTER JOIN restocked r USING (return_reference, sku)
)
SELECT
    'wms_return_sku:' || p.return_reference || '|' || p.sku AS grain_key,
    w.order_reference, l.order_line_reference, NULL AS rma_reference, w.return_reference,
    w.tracking_id, p.sku, NULL AS refund_reference,
    CAST(p.restocked - p.undamaged AS INTEGER) AS quantity_gap,
    coalesce(abs(p.restocked - p.undamaged) * l.unit_gross, 0) AS amount_at_risk,
    l.currency,
    json_object('undamaged_units', p.undamaged, 'restocked_units', p.restocked,
                'adjustments', p.transactions, 'completed_at', w.completed_at,
                'unit_gross', l.unit_gross, 'restock_lag_days', $restock_lag_days) AS details,
    'Warehouse return ' || w.return_reference || ' (order ' || coalesce(w.order_reference, '?') || ' / SKU ' || p.sku
        || ', completed ' || strftime(w.completed_at, '%Y-%m-%d') || ') graded ' || units_text(p.undamaged)
        || ' undamaged, but the stock adjustments tagged with it (' || ids_text(p.transactions, 'none') || ') restocked '
        || units_text(p.restocked) || ' (checked more than ' || days_text($restock_lag_days) || ' after completion): '
        || units_text(abs(p.restocked - p.undamaged))
        || CASE WHEN l.unit_gross IS NULL THEN ' apart (no order line gives their value).'
                ELSE ' worth ' || money_text(abs(p.restocked - p.undamaged) * l.unit_gross, l.currency) || ' apart.' END AS explanation
FROM per_sku p
JOIN core.wms_returns w ON w.business_date = $business_date AND w.return_reference = p.return_reference
LEFT JOIN core.order_lines l
       ON l.business_date = $business_date AND l.order_reference = w.order_reference AND l.sku = p.sku
WHERE w.state = 'Completed'
  AND w.completed_at < $as_of - to_days(CAST($restock_lag_days AS INTEGER))
  AND p.restocked <> p.undamaged
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date AND i.source = 'wms_stock_adjustments'
                    AND i.return_reference = w.return_reference)
