-- UNSYNCED_STOCK_ADJUSTMENT (SKU): WMS availableStock exceeds storefront oc_product.quantity
-- and return-related adjustments restocked that SKU within stock_lookback_days: the restock
-- never reached the shop. Stock levels are the ones read by this run.
WITH restocks AS (
    SELECT sku, sum(net_units) AS units, max(completed_at) AS last_restock_at,
           string_agg(DISTINCT return_reference, ',' ORDER BY return_reference) AS returns
    FROM core.stock_adjustment_lines
    WHERE business_date = $business_date AND return_reference IS NOT NULL AND net_units > 0
      AND completed_at > $as_of - to_days(CAST($stock_lookback_days AS INTEGER))
    GROUP BY sku
)
SELECT
    'sku:' || s.sku AS grain_key,
    NULL AS order_reference, NULL AS order_line_reference, NULL AS rma_reference,
    r.returns AS return_reference, NULL AS tracking_id, s.sku, NULL AS refund_reference,
    CAST(s.wms_available_stock - s.storefront_quantity AS INTEGER) AS quantity_gap,
    (s.wms_available_stock - s.storefront_quantity) * s.storefront_price AS amount_at_risk,
    $store_currency AS currency,
    json_object('wms_available_stock', s.wms_available_stock, 'storefront_quantity', s.storefront_quantity,
                'storefront_price', s.storefront_price, 'restocked_units', r.units,
                'last_restock_at', r.last_restock_at,
                'stock_lookback_days', $stock_lookback_days) AS details,
    'SKU ' || s.sku || ': the warehouse has ' || units_text(s.wms_available_stock) || ' available after restocking '
        || units_text(r.units) || ' from return ' || ids_text(r.returns, '?') || ' (last on '
        || strftime(r.last_restock_at, '%Y-%m-%d') || '), but the shop shows ' || s.storefront_quantity || ': '
        || units_text(s.wms_available_stock - s.storefront_quantity) || ' worth '
        || money_text((s.wms_available_stock - s.storefront_quantity) * s.storefront_price, $store_currency)
        || ' not back on sale.' AS explanation
FROM core.stock_levels s
JOIN restocks r USING (sku)
WHERE s.business_date = $business_date
  AND s.wms_available_stock > s.storefront_quantity
