-- core.order_lines for business date $business_date: the order line of the rules is the pair
-- (order reference, SKU). Option variants (several oc_order_product rows of one SKU in one
-- order) are one line: quantities add up and the unit gross is the rows' total gross divided by
-- their total quantity (exact decimal division, half-up to 8 places); row gross per unit is
-- (price + tax) * currency_value, in the order's currency. Abandoned checkouts
-- (order_status_id 0, OpenCart's "missing orders") are not orders: left out with their lines.
INSERT INTO core.order_lines
WITH rows AS (
    SELECT CAST(l.order_id AS VARCHAR) AS order_reference, l.order_product_id, trim(l.model) AS model,
           lower(trim(l.model)) AS sku_key, l.quantity,
           (l.price + l.tax) * o.currency_value * l.quantity AS row_gross,
           o.currency_value, o.currency_code, o.date_added
    FROM raw.oc_order_lines_at($business_date) l
    JOIN raw.oc_orders_at($business_date) o ON o.order_id = l.order_id
    WHERE o.order_status_id IS DISTINCT FROM 0
)
SELECT
    $business_date,
    order_reference,
    string_agg(CAST(order_product_id AS VARCHAR), ',' ORDER BY order_product_id),
    arg_min(model, order_product_id),
    sku_key,
    CAST(count(*) AS INTEGER),
    CAST(sum(quantity) AS INTEGER),
    CAST(sum(row_gross) AS DECIMAL(38,12)),
    any_value(currency_value),
    any_value(currency_code),
    div_half_up_8(sum(row_gross), sum(quantity)),
    any_value(date_added)
FROM rows
GROUP BY order_reference, sku_key;
