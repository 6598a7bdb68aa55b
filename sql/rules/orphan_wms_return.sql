-- ORPHAN_WMS_RETURN (WMS return): no RMA line matches it. Amount: the unit gross of its
-- (non-Missing) units when the order line (order + SKU) is known, else 0. A return of an order
-- named by a rejected record, or whose reference is that of a rejected RMA, is not judged (its
-- RMA may be the record that failed validation).
WITH units AS (
    SELECT u.return_reference, u.line_item_reference, u.sku, u.state, l.unit_gross, l.currency,
           l.order_reference AS known_order
    FROM core.wms_return_units u
    JOIN core.wms_returns w ON w.business_date = $business_date AND w.return_reference = u.return_reference
    LEFT JOIN core.order_lines l
           ON l.business_date = $business_date AND l.order_reference = w.order_reference AND l.sku = u.sku
    WHERE u.business_date = $business_date
)
SELECT
    'wms_return:' || w.return_reference AS grain_key,
    w.order_reference, NULL AS order_line_reference, NULL AS rma_reference, w.return_reference,
    w.tracking_id, NULL AS sku, NULL AS refund_reference,
    CAST(count(u.line_item_reference) FILTER (WHERE u.state <> 'Missing') AS INTEGER) AS quantity_gap,
    coalesce(sum(u.unit_gross) FILTER (WHERE u.state <> 'Missing'), 0) AS amount_at_risk,
    any_value(u.currency) AS currency,
    json_object('wms_state', w.state, 'order_known', bool_or(u.known_order IS NOT NULL),
                'units', count(u.line_item_reference),
                'skus', string_agg(DISTINCT u.sku, ',' ORDER BY u.sku)) AS details,
    'Warehouse return ' || w.return_reference || ' (' || w.state || ', tracking ' || coalesce(w.tracking_id, 'none')
        || ', ' || units_text(count(u.line_item_reference)) || ' of ' || coalesce(string_agg(DISTINCT u.sku, ', ' ORDER BY u.sku), 'no SKU')
        || ') names order ' || coalesce(w.order_reference, '?')
        || CASE WHEN bool_or(u.known_order IS NOT NULL) THEN '' ELSE ' (unknown to the shop)' END
        || ' but matches no RMA: '
        || CASE WHEN any_value(u.currency) IS NULL THEN 'goods of unknown value nobody authorised.'
                ELSE money_text(coalesce(sum(u.unit_gross) FILTER (WHERE u.state <> 'Missing'), 0), any_value(u.currency))
                     || ' of goods nobody authorised.' END AS explanation
FROM core.wms_returns w
LEFT JOIN units u ON u.return_reference = w.return_reference
WHERE w.business_date = $business_date
  AND NOT EXISTS (SELECT 1 FROM recon.rma_matches m
                  WHERE m.business_date = $business_date AND m.return_reference = w.return_reference)
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date AND i.source <> 'payment_refunds'
                    AND (i.order_reference = w.order_reference OR i.rma_reference = w.return_reference))
GROUP BY w.return_reference, w.order_reference, w.tracking_id, w.state
