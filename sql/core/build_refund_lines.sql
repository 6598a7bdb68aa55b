-- core.refund_lines: every credit note in its state at T, per order line it names. A credit
-- note's state at T is its latest version (raw.refund_lines keeps each one, once: the archive as
-- read by the latest run, the same for every date) dated <= T, whatever the order of files and lines: a note released only after T is not money out at T, and a stale
-- PENDING redelivered after RELEASED changes nothing. Money out = the version is RELEASED and a
-- payment REFUNDED; a missing currency is the order's. Each line is tied to the order line of
-- the rules (order + SKU) through its oc_order_product row, which must belong to that order (an
-- abandoned checkout is no order).
INSERT INTO core.refund_lines
WITH versions AS (
    SELECT * FROM raw.refund_lines
    WHERE credit_note_date <= $as_of
      AND coalesce(version_date, credit_note_date) <= $as_of
),
in_force AS (
    SELECT credit_note_number, version_key FROM versions
    QUALIFY row_number() OVER (PARTITION BY credit_note_number
                               ORDER BY coalesce(version_date, credit_note_date) DESC, source_file, source_line) = 1
),
orders AS (
    SELECT CAST(order_id AS VARCHAR) AS order_reference, currency_code
    FROM raw.oc_orders_at($business_date) WHERE order_status_id IS DISTINCT FROM 0
),
products AS (
    SELECT CAST(l.order_id AS VARCHAR) AS order_reference, CAST(l.order_product_id AS VARCHAR) AS order_product_id,
           lower(trim(l.model)) AS sku_key
    FROM raw.oc_order_lines_at($business_date) l
)
SELECT
    $business_date,
    f.credit_note_number,
    f.order_reference,
    f.order_line_reference,
    ol.sku,
    ol.sku_key,
    f.rma_reference,
    f.refund_type,
    f.status_code,
    f.status_code = 'RELEASED' AND f.refunded_gross > 0,
    CASE WHEN f.status_code = 'RELEASED' THEN f.refunded_gross ELSE 0 END,
    coalesce(f.currency, o.currency_code),
    o.currency_code,
    f.credit_note_date,
    coalesce(f.version_date, f.credit_note_date),
    f.version_key
FROM versions f
JOIN in_force USING (credit_note_number, version_key)
LEFT JOIN orders o ON o.order_reference = f.order_reference
-- (o.order_reference, not f's: a line of an order that is no order, or none, ties to no order line)
LEFT JOIN products p ON p.order_reference = o.order_reference AND p.order_product_id = f.order_line_reference
LEFT JOIN core.order_lines ol
       ON ol.business_date = $business_date AND ol.order_reference = p.order_reference AND ol.sku_key = p.sku_key;
