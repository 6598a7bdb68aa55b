-- CREDIT_NOTE_NOT_PAID (credit note): a money-out credit note released more than
-- payment_lag_days before T has no succeeded provider refund linked (recon.payment_matches).
-- details.kind: payment_failed when the only linked refunds failed or were canceled, else
-- no_payment (none linked, or only ones still pending). Only dates the provider was read for
-- (state.payment_polls) are judged; a note named by a rejected ledger line or provider refund
-- (itself or its order) is not.
SELECT
    'credit_note:' || n.credit_note_number AS grain_key,
    n.order_reference, NULL AS order_line_reference, NULL AS rma_reference, NULL AS return_reference,
    NULL AS tracking_id, NULL AS sku, n.credit_note_number AS refund_reference,
    NULL AS quantity_gap, n.amount AS amount_at_risk, n.currency,
    json_object('kind', CASE WHEN l.linked > 0 AND l.failed = l.linked THEN 'payment_failed' ELSE 'no_payment' END,
                'note_amount', n.amount, 'released_at', n.status_date,
                'provider_refunds', coalesce(l.refunds, to_json([]))) AS details,
    'Credit note ' || n.credit_note_number || ' for order ' || coalesce(n.order_reference, '?') || ' was released on '
        || strftime(n.status_date, '%Y-%m-%d') || ' for ' || money_text(n.amount, n.currency) || ', but '
        || CASE WHEN l.linked IS NULL THEN 'the payment provider shows no refund for it'
                WHEN l.failed = l.linked THEN 'its provider refunds did not go through (' || l.refund_statuses || ')'
                ELSE 'no provider refund for it has succeeded (' || l.refund_statuses || ')' END
        || ': the customer has not been paid.' AS explanation
FROM core.credit_notes n
LEFT JOIN recon.payment_links($business_date) l USING (credit_note_number)
WHERE n.business_date = $business_date
  AND n.is_money_out
  AND n.status_date < $as_of - to_days(CAST($payment_lag_days AS INTEGER))
  AND coalesce(l.succeeded, 0) = 0
  AND EXISTS (SELECT 1 FROM state.payment_polls p WHERE p.business_date = $business_date)
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date AND i.source IN ('refund_ledger', 'payment_refunds')
                    AND (i.credit_note_number = n.credit_note_number OR i.order_reference = n.order_reference))
