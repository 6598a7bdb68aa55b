-- recon.order_line_positions: per storefront order line with an RMA or a money-out return
-- refund as of T, the units requested / received / accepted / damaged over the distinct WMS
-- returns matched to its RMAs, and the money refunded (reconciliation.md "Units").
INSERT INTO recon.order_line_positions
WITH lines AS (SELECT * FROM core.order_lines WHERE business_date = $business_date),
rmas AS (SELECT * FROM core.rma_lines WHERE business_date = $business_date AND order_line_reference IS NOT NULL),
refunds AS (
    SELECT * FROM core.refund_lines
    WHERE business_date = $business_date AND is_money_out AND refund_type = 'Return'
      AND order_line_reference <> 'SHIPPING'
),
judged AS (
    SELECT order_line_reference FROM rmas
    UNION SELECT f.order_line_reference FROM refunds f
          JOIN lines l ON l.order_line_reference = f.order_line_reference AND l.order_reference = f.order_reference
),
requested AS (
    SELECT order_line_reference,
           string_agg(rma_reference, ',' ORDER BY return_id) AS rma_references,
           sum(CASE WHEN status NOT IN ('REJECTED', 'CANCELED') THEN quantity ELSE 0 END) AS requested,
           bool_or(status NOT IN ('REJECTED', 'CANCELED') AND action IN (SELECT action FROM cfg_non_refund_actions))
               AS has_non_refund_action
    FROM rmas GROUP BY order_line_reference
),
matched AS (
    SELECT DISTINCT r.order_line_reference, r.sku, m.return_reference
    FROM rmas r JOIN recon.rma_matches m
      ON m.business_date = $business_date AND m.rma_reference = r.rma_reference
),
returns AS (
    SELECT m.order_line_reference,
           string_agg(m.return_reference, ',' ORDER BY m.return_reference) AS matched_returns,
           count(*) AS matched_return_count,
           count(*) FILTER (WHERE w.state = 'Completed') AS completed_return_count,
           max(w.completed_at) AS latest_completed_at
    FROM matched m JOIN core.wms_returns w
      ON w.business_date = $business_date AND w.return_reference = m.return_reference
    GROUP BY m.order_line_reference
),
units AS (
    SELECT m.order_line_reference,
           count(*) FILTER (WHERE u.state IN ('Undamaged', 'Damaged', 'WaitingToBeProcessed')) AS received,
           count(*) FILTER (WHERE u.state = 'Undamaged') AS accepted,
           count(*) FILTER (WHERE u.state = 'Damaged') AS damaged
    FROM matched m
    JOIN core.wms_returns w
      ON w.business_date = $business_date AND w.return_reference = m.return_reference AND w.arrived_at IS NOT NULL
    JOIN core.wms_return_units u
      ON u.business_date = $business_date AND u.return_reference = m.return_reference AND u.sku = m.sku
    GROUP BY m.order_line_reference
),
money AS (
    SELECT order_line_reference, order_reference,
           sum(amount) AS refunded,
           count(DISTINCT credit_note_number) AS credit_note_count,
           string_agg(DISTINCT credit_note_number, ',' ORDER BY credit_note_number) AS credit_notes
    FROM refunds GROUP BY order_line_reference, order_reference
)
SELECT
    $business_date,
    l.order_reference,
    l.order_line_reference,
    l.sku,
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
    CAST(coalesce(mo.refunded, 0) AS DECIMAL(18,2)),
    CAST(coalesce(mo.credit_note_count, 0) AS INTEGER),
    mo.credit_notes,
    CAST(CASE WHEN l.unit_gross > 0 THEN round(coalesce(mo.refunded, 0) / l.unit_gross) ELSE 0 END AS INTEGER),
    coalesce(q.has_non_refund_action, false)
FROM judged j
JOIN lines l USING (order_line_reference)
LEFT JOIN requested q USING (order_line_reference)
LEFT JOIN returns rt USING (order_line_reference)
LEFT JOIN units u USING (order_line_reference)
LEFT JOIN money mo ON mo.order_line_reference = l.order_line_reference AND mo.order_reference = l.order_reference;
