-- core.rma_lines: storefront RMAs existing at T with their canonical status as of T (the latest
-- return history row dated <= T; the RMA's own status when no row is), the current AUTHORIZED
-- spell, the action and the latest tracking number noted by T. Names map through the configured
-- maps (temp tables cfg_status_map / cfg_action_map); a name the map does not know gives a null
-- status (or action_known = false): the RMA still matches and counts as requested, only the
-- rules that need its canonical status skip it. An RMA belongs to the order line of its order
-- and model (case-insensitive, surrounding spaces ignored, as MySQL compares), whatever its
-- product_id says (0 when the customer typed the model, or a product re-created since).
INSERT INTO core.rma_lines
WITH history AS (
    SELECT h.return_id, h.date_added, h.return_history_id, h.tracking_id,
           m.canonical AS status, h.return_status_name
    FROM raw.oc_return_history_at($business_date) h
    LEFT JOIN cfg_status_map m ON m.name = lower(trim(h.return_status_name))
    WHERE h.date_added <= $as_of
),
ordered AS (
    SELECT *,
           row_number() OVER (PARTITION BY return_id ORDER BY date_added DESC, return_history_id DESC) AS rn,
           -- spells: a new one starts at each change of canonical status (an unknown one included)
           sum(CASE WHEN rn_asc = 1 OR status IS DISTINCT FROM prev_status THEN 1 ELSE 0 END)
               OVER (PARTITION BY return_id ORDER BY date_added, return_history_id) AS spell
    FROM (SELECT *, lag(status) OVER (PARTITION BY return_id ORDER BY date_added, return_history_id) AS prev_status,
                 row_number() OVER (PARTITION BY return_id ORDER BY date_added, return_history_id) AS rn_asc
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
lines AS (
    SELECT order_reference, sku_key, sku, order_line_reference
    FROM core.order_lines WHERE business_date = $business_date
),
rmas AS (
    SELECT r.*,
           l.return_id IS NOT NULL AS has_history,
           l.return_status_name AS history_status_name, l.status AS history_status,
           ss.since, t.tracking_id,
           cs.canonical AS own_status, am.canonical AS action
    FROM raw.oc_returns_at($business_date) r
    LEFT JOIN latest l ON l.return_id = r.return_id
    LEFT JOIN spell_start ss ON ss.return_id = r.return_id
    LEFT JOIN tracking t ON t.return_id = r.return_id
    LEFT JOIN cfg_status_map cs ON cs.name = lower(trim(r.return_status_name))
    LEFT JOIN cfg_action_map am ON am.name = lower(trim(r.return_action_name))
    WHERE r.date_added <= $as_of
)
SELECT
    $business_date,
    'opencart',
    'RMA-' || r.return_id,
    r.return_id,
    CAST(r.order_id AS VARCHAR),
    ol.order_line_reference,
    coalesce(ol.sku, trim(r.model)),
    lower(trim(r.model)),
    r.quantity,
    CASE WHEN r.has_history THEN r.history_status_name ELSE r.return_status_name END,
    CASE WHEN r.has_history THEN r.history_status ELSE r.own_status END,
    CASE WHEN r.has_history THEN r.since ELSE r.date_added END,
    CASE WHEN (CASE WHEN r.has_history THEN r.history_status ELSE r.own_status END) = 'AUTHORIZED'
         THEN (CASE WHEN r.has_history THEN r.since ELSE r.date_added END) END,
    r.return_action_name,
    r.action,
    coalesce(r.return_action_id, 0) = 0 OR r.action IS NOT NULL,
    r.tracking_id,
    r.date_added
FROM rmas r
LEFT JOIN lines ol ON ol.order_reference = CAST(r.order_id AS VARCHAR) AND ol.sku_key = lower(trim(r.model));
