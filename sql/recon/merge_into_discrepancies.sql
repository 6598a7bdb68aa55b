-- recon.discrepancies: one row per discrepancy ever detected, derived from the full detection
-- history, so the result does not depend on the order runs happened in:
--   * the latest evaluated business date decides the status (OPEN if detected on it, else
--     RESOLVED); rerunning an earlier date never reopens or closes anything a later date decided;
--   * first/last_detected_on are the earliest/latest dates it was detected on;
--   * resolved_on is the first evaluated date after last_detected_on (null while open);
--   * the other columns come from its latest detection;
--   * the review columns are set next, from recon.review_events (merge_into_discrepancy_reviews.sql);
--   * the payment rules ($payment_rules) judge only dates the payment provider was read for
--     (state.payment_polls): for them the latest such date decides, so a day with the source
--     disabled neither resolves nor reopens what they found.
DELETE FROM recon.discrepancies;
INSERT INTO recon.discrepancies (discrepancy_id, rule, severity, status, business_date, first_detected_on,
    last_detected_on, resolved_on, order_reference, order_line_reference, rma_reference, return_reference,
    tracking_id, sku, refund_reference, quantity_gap, amount_at_risk, currency, details, explanation)
WITH latest_eval AS (SELECT max(business_date) AS d FROM recon.evaluated_dates),
judged AS (  -- the dates each rule was judged on
    SELECT 'all' AS family, business_date FROM recon.evaluated_dates
    UNION ALL
    SELECT 'payments', v.business_date FROM recon.evaluated_dates v
    WHERE v.business_date IN (SELECT business_date FROM state.payment_polls)
),
latest_judged AS (SELECT family, max(business_date) AS d FROM judged GROUP BY family),
per_id AS (
    SELECT discrepancy_id, min(business_date) AS first_detected_on, max(business_date) AS last_detected_on
    FROM recon.discrepancy_detections GROUP BY discrepancy_id
),
latest_row AS (
    SELECT * FROM recon.discrepancy_detections
    QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY business_date DESC) = 1
)
SELECT
    r.discrepancy_id, r.rule, r.severity,
    CASE WHEN p.last_detected_on >= coalesce(j.d, e.d) THEN 'OPEN' ELSE 'RESOLVED' END,
    e.d,
    p.first_detected_on,
    p.last_detected_on,
    CASE WHEN p.last_detected_on < coalesce(j.d, e.d) THEN
        (SELECT min(v.business_date) FROM judged v WHERE v.family = coalesce(j.family, 'all') AND v.business_date > p.last_detected_on)
    END,
    r.order_reference, r.order_line_reference, r.rma_reference, r.return_reference, r.tracking_id,
    r.sku, r.refund_reference, r.quantity_gap, r.amount_at_risk, r.currency, r.details, r.explanation
FROM latest_row r
JOIN per_id p USING (discrepancy_id)
CROSS JOIN latest_eval e
LEFT JOIN latest_judged j ON j.family = CASE WHEN list_contains($payment_rules, r.rule) THEN 'payments' ELSE 'all' END;
