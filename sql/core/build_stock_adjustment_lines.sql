-- core.stock_adjustment_lines: every adjustment completed by T (each transaction once), per
-- SKU, with its net change to sellable stock; return_reference is set when the tag names a
-- WMS return.
INSERT INTO core.stock_adjustment_lines
WITH heads AS (
    SELECT * FROM raw.wms_stock_adjustments
    WHERE business_date <= $business_date AND completed_at <= $as_of
    QUALIFY row_number() OVER (PARTITION BY transaction_number ORDER BY business_date DESC) = 1
)
SELECT
    $business_date,
    h.transaction_number,
    h.transaction_type,
    h.tag,
    r.return_reference,
    l.sku,
    CAST(sum(coalesce(l.found_amount, 0) + coalesce(l.release_from_quarantine_amount, 0)
             - coalesce(l.lost_amount, 0) - coalesce(l.put_in_quarantine_amount, 0)) AS INTEGER),
    h.completed_at
FROM heads h
JOIN raw.wms_stock_adjustment_lines l
  ON l.business_date = h.business_date AND l.transaction_number = h.transaction_number
LEFT JOIN core.wms_returns r ON r.business_date = $business_date AND r.return_reference = h.tag
GROUP BY ALL;
