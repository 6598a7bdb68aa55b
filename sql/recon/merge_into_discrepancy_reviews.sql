-- The review columns of recon.discrepancies from the append-only recon.review_events
-- (reconciliation.md "Review: what finance decided"), run after every merge of the register and
-- after every review command, so they never depend on the order runs and reviews happened in:
--   * review_state: the latest state set, while the amount (and currency) it was made on holds:
--     NEW when none was set, or when the discrepancy's current amount differs, or when any
--     detection of a business date on or after the one the decision was made on (the register's
--     date then) had another amount (an ACCEPTED break that grew, even if it later shrank back,
--     or one detected again with another amount, needs a new look; a backfill of an earlier date
--     does not count). INVESTIGATING is kept whatever the amount: someone is on it;
--   * assignee: the latest assignee set (null: unassigned);
--   * last_note: the latest note written.
UPDATE recon.discrepancies AS d
SET review_state = CASE WHEN s.new IS NULL THEN 'NEW'
                        WHEN s.new = 'INVESTIGATING' THEN s.new
                        WHEN s.amount_at_risk IS DISTINCT FROM d.amount_at_risk
                             OR s.currency IS DISTINCT FROM d.currency OR c.discrepancy_id IS NOT NULL THEN 'NEW'
                        ELSE s.new END,
    assignee = a.new,
    last_note = n.note
FROM recon.discrepancies AS x
LEFT JOIN (SELECT discrepancy_id, new, amount_at_risk, currency, business_date FROM recon.review_events
           WHERE field = 'review_state'
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS s USING (discrepancy_id)
LEFT JOIN (SELECT DISTINCT l.discrepancy_id
           FROM (SELECT discrepancy_id, amount_at_risk, currency, business_date FROM recon.review_events
                 WHERE field = 'review_state'
                 QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS l
           JOIN recon.discrepancy_detections t ON t.discrepancy_id = l.discrepancy_id
           WHERE t.business_date >= l.business_date
             AND (t.amount_at_risk IS DISTINCT FROM l.amount_at_risk OR t.currency IS DISTINCT FROM l.currency)
          ) AS c USING (discrepancy_id)
LEFT JOIN (SELECT discrepancy_id, new FROM recon.review_events
           WHERE field = 'assignee'
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS a USING (discrepancy_id)
LEFT JOIN (SELECT discrepancy_id, note FROM recon.review_events
           WHERE note IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS n USING (discrepancy_id)
WHERE d.discrepancy_id = x.discrepancy_id;
