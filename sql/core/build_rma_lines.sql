-- core.rma_lines: storefront RMAs existing at T with their canonical status as of T (from the
-- return history), the current AUTHORIZED spell, the action and the latest tracking number.
-- Names map through the configured maps (temp tables cfg_status_map / cfg_action_map).
INSERT INTO core.rma_lines
WITH history AS (
    SELECT h.return_id, h.date_added, h.return_history_id, h.tracking_id,
           m.canonical AS status, h.return_status_name
    FROM raw.oc_return_history h
    LEFT JOIN cfg_status_map m ON m.name = lower(trim(h.return_status_name))
    WHERE h.business_date = $business_date AND h.date_added <= $as_of
),
ordered AS (
    SELECT *,
           row_number() OVER (PARTITION BY return_id ORDER BY date_added DESC, return_history_id DESC) AS rn,
           -- spells: a new one starts at each change of canonical status
           sum(CASE WHEN status IS DISTINCT FROM prev_status THEN 1 ELSE 0 END)
               OVER (PARTITION BY return_id ORDER BY date_added, return_history_id) AS spell
    FROM (SELECT *, lag(status) OVER (PARTITION BY return_id ORDER BY date_added, return_history_id) AS prev_status
          FROM history)
),
latest AS (SELECT * FROM ordered WHERE rn = 1),
spell_start AS (
    SELECT o.return_id, min(o.date_added) AS since
    FROM ordered o JOIN latest l ON l.return_id = o.return_id AND l.spell = o.spell
    GROUP BY o.return_id
),
tracking AS (
    SELECT return_id, arg_max(tracking_id, (date_added, return_history_id)) AS tracking_id
    FROM history WHERE tracking_id IS NOT NULL
    GROUP BY return_id
),
-- The RMA's order line: same order and product; when the RMA has no product id, same SKU.
-- (Two equality joins, not one join with OR: that would be a nested loop.)
lines_by_product AS (
    SELECT order_reference, product_id, min(order_line_reference) AS order_line_reference
    FROM core.order_lines WHERE business_date = $business_date GROUP BY ALL
),
lines_by_sku AS (
    SELECT order_reference, sku, min(order_line_reference) AS order_line_reference
    FROM core.order_lines WHERE business_date = $business_date GROUP BY ALL
)
SELECT
    $business_date,
    'RMA-' || r.return_id,
    r.return_id,
    CAST(r.order_id AS VARCHAR),
    coalesce(lp.order_line_reference,
             CASE WHEN coalesce(r.product_id, 0) = 0 THEN ls.order_line_reference END),
    r.model,
    r.quantity,
    coalesce(l.return_status_name, r.return_status_name),
    coalesce(l.status, cs.canonical),
    coalesce(ss.since, r.date_added),
    CASE WHEN coalesce(l.status, cs.canonical) = 'AUTHORIZED' THEN coalesce(ss.since, r.date_added) END,
    r.return_action_name,
    am.canonical,
    t.tracking_id,
    r.date_added
FROM raw.oc_returns r
LEFT JOIN latest l ON l.return_id = r.return_id
LEFT JOIN spell_start ss ON ss.return_id = r.return_id
LEFT JOIN tracking t ON t.return_id = r.return_id
LEFT JOIN cfg_status_map cs ON cs.name = lower(trim(r.return_status_name))
LEFT JOIN cfg_action_map am ON am.name = lower(trim(r.return_action_name))
LEFT JOIN lines_by_product lp ON lp.order_reference = CAST(r.order_id AS VARCHAR) AND lp.product_id = r.product_id
LEFT JOIN lines_by_sku ls ON ls.order_reference = CAST(r.order_id AS VARCHAR) AND ls.sku = r.model
WHERE r.business_date = $business_date AND r.date_added <= $as_of;
