-- recon.rma_matches: each RMA line tied to WMS returns existing at T, by the first method that
-- yields any return: (1) reference RMA-<id>, (2) tracking number, (3) same order holding the SKU.
INSERT INTO recon.rma_matches
WITH rmas AS (SELECT * FROM core.rma_lines WHERE business_date = $business_date),
wms AS (SELECT * FROM core.wms_returns WHERE business_date = $business_date),
by_reference AS (
    SELECT r.rma_reference, w.return_reference, 1 AS rank FROM rmas r
    JOIN wms w ON w.return_reference = r.rma_reference
),
by_tracking AS (
    SELECT r.rma_reference, w.return_reference, 2 FROM rmas r
    JOIN wms w ON w.tracking_id = r.tracking_id
),
by_order_sku AS (
    SELECT DISTINCT r.rma_reference, w.return_reference, 3 FROM rmas r
    JOIN wms w ON w.order_reference = r.order_reference
    JOIN core.wms_return_units u
      ON u.business_date = $business_date AND u.return_reference = w.return_reference AND u.sku = r.sku
),
candidates AS (
    SELECT * FROM by_reference UNION ALL SELECT * FROM by_tracking UNION ALL SELECT * FROM by_order_sku
),
first_hit AS (
    SELECT * FROM candidates
    QUALIFY rank = min(rank) OVER (PARTITION BY rma_reference)
)
SELECT DISTINCT
    $business_date,
    f.rma_reference,
    f.return_reference,
    CASE f.rank WHEN 1 THEN 'reference' WHEN 2 THEN 'tracking' ELSE 'order_sku' END,
    r.order_reference,
    w.order_reference,
    r.tracking_id,
    w.tracking_id
FROM first_hit f
JOIN rmas r USING (rma_reference)
JOIN wms w USING (return_reference);
