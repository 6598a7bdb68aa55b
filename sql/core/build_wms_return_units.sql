-- core.wms_return_units: the units (one line item each) of the chosen version of every WMS
-- return in core.wms_returns; a unit's grade counts only once processed by T.
INSERT INTO core.wms_return_units
WITH items AS (
    SELECT return_reference, return_updated_at, line_item_reference, sku, processed_at, state,
           business_date AS fetched_on, 'poll' AS fetched_via
    FROM raw.wms_return_line_items WHERE business_date <= $business_date
    UNION ALL
    SELECT return_reference, return_updated_at, line_item_reference, sku, processed_at, state,
           business_date, 'probe'
    FROM raw.wms_probed_return_line_items WHERE business_date <= $business_date
),
chosen AS (
    SELECT i.*
    FROM items i
    JOIN core.wms_returns r
      ON r.business_date = $business_date AND r.return_reference = i.return_reference
     AND r.updated_at = i.return_updated_at AND r.fetched_via = i.fetched_via
    QUALIFY row_number() OVER (PARTITION BY i.return_reference, i.line_item_reference
                               ORDER BY i.fetched_on DESC) = 1
)
SELECT
    $business_date,
    return_reference,
    line_item_reference,
    sku,
    CASE WHEN state <> 'WaitingToBeProcessed' AND processed_at <= $as_of THEN state
         ELSE 'WaitingToBeProcessed' END,
    processed_at
FROM chosen;
