-- core.order_lines for business date $business_date: storefront order lines with the gross
-- unit price in the order's currency, (price + tax) * currency_value.
INSERT INTO core.order_lines
SELECT
    $business_date,
    CAST(l.order_id AS VARCHAR),
    CAST(l.order_product_id AS VARCHAR),
    l.product_id,
    l.model,
    l.quantity,
    l.price,
    l.tax,
    o.currency_value,
    o.currency_code,
    CAST((l.price + l.tax) * o.currency_value AS DECIMAL(24,8)),
    o.date_added
FROM raw.oc_order_lines l
JOIN raw.oc_orders o ON o.order_id = l.order_id AND o.business_date = l.business_date
WHERE l.business_date = $business_date;
