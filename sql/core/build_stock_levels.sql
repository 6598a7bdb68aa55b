-- core.stock_levels: sellable stock per SKU on both sides, as read by this run (the sources
-- only give stock "now").
INSERT INTO core.stock_levels
SELECT
    $business_date,
    coalesce(w.sku, p.model),
    w.available_stock,
    p.quantity,
    p.price,
    w.read_at
FROM (SELECT * FROM raw.wms_stocks WHERE business_date = $business_date) w
FULL OUTER JOIN (
    SELECT model, sum(quantity) AS quantity, max(price) AS price
    FROM raw.oc_products_at($business_date) GROUP BY model
) p ON p.model = w.sku;
