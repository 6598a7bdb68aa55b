-- The review columns of recon.discrepancies from the append-only recon.review_events
-- (reconciliation.md "Review: what finance decided"), run after every merge of the register and
-- after every review command, so they never depend on the order runs and reviews happened in:
--   * review_state: the latest state set, while the discrepancy's amount (and currency) is still
--     the one that decision was made on; NEW when none was set or the amount changed since
--     (an ACCEPTED break that grew, or one detected again with another amount, needs a new look);
--   * assignee: the latest assignee set (null: unassigned);
--   * last_note: the latest note written.
UPDATE recon.discrepancies AS d
SET review_state = CASE WHEN s.new IS NOT NULL
                             AND s.amount_at_risk IS NOT DISTINCT FROM d.amount_at_risk
                             AND s.currency IS NOT DISTINCT FROM d.currency THEN s.new
                        ELSE 'NEW' END,
    assignee = a.new,
    last_note = n.note
FROM recon.discrepancies AS x
LEFT JOIN (SELECT discrepancy_id, new, amount_at_risk, currency FROM recon.review_events
           WHERE field = 'review_state'
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS s USING (discrepancy_id)
LEFT JOIN (SELECT discrepancy_id, new FROM recon.review_events
           WHERE field = 'assignee'
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS a USING (discrepancy_id)
LEFT JOIN (SELECT discrepancy_id, note FROM recon.review_events
           WHERE note IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY discrepancy_id ORDER BY event_id DESC) = 1) AS n USING (discrepancy_id)
WHERE d.discrepancy_id = x.discrepancy_id;
