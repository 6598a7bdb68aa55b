-- The benchmark's floor (pipelines/bench.py): one bare DuckDB query that scans every input the
-- canonical layer and the rules read for business date $business_date (as of $as_of) once and
-- joins them at the grain of the order-line rules (order + SKU): the storefront's order lines,
-- orders, RMAs and RMA history in force at the date's fetch, the latest WMS return version
-- updated by T with its units, the stock adjustments and levels, and every refund version
-- dated by T. No matching cascade, no rules, no writes: what any implementation must at least
-- pay to read and join the same rows.
WITH lines AS (
    SELECT l.order_id, lower(trim(l.model)) AS sku, sum(l.quantity) AS ordered,
           sum((l.price + l.tax) * o.currency_value * l.quantity) AS gross
    FROM raw.oc_order_lines_at($business_date) l JOIN raw.oc_orders_at($business_date) o USING (order_id)
    WHERE o.order_status_id IS DISTINCT FROM 0
    GROUP BY ALL
),
status AS (
    SELECT return_id, arg_max(return_status_name, date_added) AS status
    FROM raw.oc_return_history_at($business_date) WHERE date_added <= $as_of GROUP BY return_id
),
rmas AS (
    SELECT r.order_id, lower(trim(r.model)) AS sku, sum(r.quantity) AS requested, count(s.status) AS with_status
    FROM raw.oc_returns_at($business_date) r LEFT JOIN status s USING (return_id)
    WHERE r.date_added <= $as_of GROUP BY ALL
),
wms AS (
    SELECT * FROM raw.wms_returns WHERE business_date <= $business_date AND updated_at <= $as_of
    QUALIFY row_number() OVER (PARTITION BY return_reference ORDER BY updated_at DESC, business_date DESC) = 1
),
units AS (
    SELECT w.order_reference, lower(trim(i.sku)) AS sku,
           count(*) FILTER (WHERE w.arrived_at <= $as_of) AS received
    FROM wms w JOIN raw.wms_return_line_items i
      ON i.return_reference = w.return_reference AND i.business_date = w.business_date
     AND i.return_updated_at IS NOT DISTINCT FROM w.updated_at
    GROUP BY ALL
),
refunds AS (
    SELECT order_reference, order_line_reference, sum(refunded_gross) AS refunded
    FROM raw.refund_lines WHERE coalesce(version_date, credit_note_date) <= $as_of GROUP BY ALL
),
refunded AS (
    SELECT CAST(l.order_id AS VARCHAR) AS order_reference, lower(trim(l.model)) AS sku, sum(f.refunded) AS refunded
    FROM refunds f JOIN raw.oc_order_lines_at($business_date) l
      ON CAST(l.order_product_id AS VARCHAR) = f.order_line_reference
    GROUP BY ALL
),
adjusted AS (
    SELECT lower(trim(a.sku)) AS sku, sum(a.found_amount - a.lost_amount) AS moved
    FROM raw.wms_stock_adjustment_lines a JOIN raw.wms_stock_adjustments h USING (transaction_number, business_date)
    WHERE h.completed_at <= $as_of GROUP BY ALL
),
stock AS (
    SELECT lower(trim(p.model)) AS sku, sum(p.quantity) AS shop, max(s.available_stock) AS warehouse
    FROM raw.oc_products_at($business_date) p
    LEFT JOIN raw.wms_stocks s ON s.business_date = $business_date AND lower(trim(s.sku)) = lower(trim(p.model))
    GROUP BY ALL
)
SELECT count(*) AS order_lines, sum(r.requested) AS requested, sum(u.received) AS received,
       sum(f.refunded) AS refunded, sum(a.moved) AS moved, sum(st.shop) AS shop_stock
FROM lines l
LEFT JOIN rmas r ON r.order_id = l.order_id AND r.sku = l.sku
LEFT JOIN units u ON u.order_reference = CAST(l.order_id AS VARCHAR) AND u.sku = l.sku
LEFT JOIN refunded f ON f.order_reference = CAST(l.order_id AS VARCHAR) AND f.sku = l.sku
LEFT JOIN adjusted a ON a.sku = l.sku
LEFT JOIN stock st ON st.sku = l.sku;
