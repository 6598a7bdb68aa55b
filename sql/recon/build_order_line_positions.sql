-- recon.order_line_positions: per order line of the rules (order reference + SKU: option variants
-- are one line) with an RMA or a counted refund as of T, the units requested / received /
-- accepted / damaged over the distinct WMS returns matched to its RMAs, and the money refunded
-- (reconciliation.md "Units"). Counted refunds: money out, refund_type Return, not SHIPPING, in
-- the order's currency (a refund in another currency is REFUND_CURRENCY_MISMATCH's, never added
-- to the order's amounts). An order named by a rejected record (core.data_issues) is left
-- unjudged: unjudged_reason says why, and the rules skip the line.
INSERT INTO recon.order_line_positions
WITH lines AS (SELECT * FROM core.order_lines WHERE business_date = $business_date),
rmas AS (
    SELECT *, status IS NULL OR status NOT IN ('REJECTED', 'CANCELED') AS live
    FROM core.rma_lines WHERE business_date = $business_date AND order_line_reference IS NOT NULL
),
refunds AS (
    SELECT * FROM core.refund_lines
    WHERE business_date = $business_date AND is_money_out AND refund_type = 'Return'
      AND order_line_reference <> 'SHIPPING' AND sku_key IS NOT NULL AND currency = order_currency
),
judged AS (
    SELECT order_reference, sku_key FROM rmas
    UNION SELECT order_reference, sku_key FROM refunds
),
requested AS (
    SELECT order_reference, sku_key,
           string_agg(rma_reference, ',' ORDER BY return_id) AS rma_references,
           sum(quantity) FILTER (WHERE live) AS requested,
           bool_or(live AND action IN (SELECT action FROM cfg_non_refund_actions)) AS has_non_refund_action,
           bool_or(live AND NOT action_known) AS has_unknown_action
    FROM rmas GROUP BY order_reference, sku_key
),
matched AS (
    SELECT DISTINCT r.order_reference, r.sku_key, r.sku, m.return_reference
    FROM rmas r JOIN recon.rma_matches m
      ON m.business_date = $business_date AND m.rma_reference = r.rma_reference
),
returns AS (
    SELECT m.order_reference, m.sku_key,
           string_agg(m.return_reference, ',' ORDER BY m.return_reference) AS matched_returns,
           count(*) AS matched_return_count,
           count(*) FILTER (WHERE w.state = 'Completed') AS completed_return_count,
           max(w.completed_at) AS latest_completed_at
    FROM matched m JOIN core.wms_returns w
      ON w.business_date = $business_date AND w.return_reference = m.return_reference
    GROUP BY m.order_reference, m.sku_key
),
units AS (
    SELECT m.order_reference, m.sku_key,
           count(*) FILTER (WHERE u.state IN ('Undamaged', 'Damaged', 'WaitingToBeProcessed')) AS received,
           count(*) FILTER (WHERE u.state = 'Undamaged') AS accepted,
           count(*) FILTER (WHERE u.state = 'Damaged') AS damaged
    FROM matched m
    JOIN core.wms_returns w
      ON w.business_date = $business_date AND w.return_reference = m.return_reference AND w.arrived_at IS NOT NULL
    JOIN core.wms_return_units u
      ON u.business_date = $business_date AND u.return_reference = m.return_reference AND u.sku = m.sku
    GROUP BY m.order_reference, m.sku_key
),
money AS (
    SELECT order_reference, sku_key,
           sum(amount) AS refunded,
           count(DISTINCT credit_note_number) AS credit_note_count,
           string_agg(DISTINCT credit_note_number, ',' ORDER BY credit_note_number) AS credit_notes
    FROM refunds GROUP BY order_reference, sku_key
),
issues AS (
    SELECT order_reference,
           string_agg(DISTINCT source || ' ' || coalesce(record_key, '?') || ': ' || reason, '; ') AS reason
    FROM core.data_issues
    WHERE business_date = $business_date AND order_reference IS NOT NULL
      AND source <> 'payment_refunds'  -- a bad payout says nothing about goods or credit notes
    GROUP BY order_reference
)
SELECT
    $business_date,
    l.order_reference,
    l.order_line_reference,
    l.sku,
    l.sku_key,
    l.currency,
    l.unit_gross,
    l.ordered_quantity,
    q.rma_references,
    CAST(least(coalesce(q.requested, 0), l.ordered_quantity) AS INTEGER),
    rt.matched_returns,
    CAST(coalesce(rt.matched_return_count, 0) AS INTEGER),
    CAST(coalesce(rt.completed_return_count, 0) AS INTEGER),
    rt.latest_completed_at,
    CAST(coalesce(u.received, 0) AS INTEGER),
    CAST(coalesce(u.accepted, 0) AS INTEGER),
    CAST(coalesce(u.damaged, 0) AS INTEGER),
    CAST(coalesce(mo.refunded, 0) AS DECIMAL(38,10)),
    CAST(coalesce(mo.credit_note_count, 0) AS INTEGER),
    mo.credit_notes,
    CASE WHEN l.unit_gross > 0 THEN div_round_units(coalesce(mo.refunded, 0), l.unit_gross) ELSE 0 END,
    coalesce(q.has_non_refund_action, false),
    coalesce(q.has_unknown_action, false),
    i.reason
FROM judged j
JOIN lines l ON l.order_reference = j.order_reference AND l.sku_key IS NOT DISTINCT FROM j.sku_key
LEFT JOIN requested q ON q.order_reference = l.order_reference AND q.sku_key IS NOT DISTINCT FROM l.sku_key
LEFT JOIN returns rt ON rt.order_reference = l.order_reference AND rt.sku_key IS NOT DISTINCT FROM l.sku_key
LEFT JOIN units u ON u.order_reference = l.order_reference AND u.sku_key IS NOT DISTINCT FROM l.sku_key
LEFT JOIN money mo ON mo.order_reference = l.order_reference AND mo.sku_key IS NOT DISTINCT FROM l.sku_key
LEFT JOIN issues i ON i.order_reference = l.order_reference;
