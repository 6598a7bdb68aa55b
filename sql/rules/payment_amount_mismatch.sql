-- PAYMENT_AMOUNT_MISMATCH (credit note): the succeeded provider refunds linked to a credit note
-- add up to more or less than the note's amount by more than the tolerance: a double payout (a
-- retry that paid twice) or a partial one. A note with no succeeded refund is
-- CREDIT_NOTE_NOT_PAID's, not this rule's. Only dates the provider was read for are judged; a
-- note named by a rejected ledger line or provider refund (itself or its order) is not.
SELECT
    'credit_note:' || n.credit_note_number AS grain_key,
    n.order_reference, NULL AS order_line_reference, NULL AS rma_reference, NULL AS return_reference,
    NULL AS tracking_id, NULL AS sku, n.credit_note_number AS refund_reference,
    NULL AS quantity_gap, abs(l.paid - n.amount) AS amount_at_risk, n.currency,
    json_object('kind', CASE WHEN l.paid > n.amount THEN 'overpaid' ELSE 'underpaid' END,
                'note_amount', n.amount, 'paid', l.paid, 'succeeded_refunds', l.succeeded,
                'tolerance', CAST($amount_tolerance AS DECIMAL(18,6)), 'provider_refunds', l.refunds) AS details,
    'Credit note ' || n.credit_note_number || ' for order ' || coalesce(n.order_reference, '?') || ' owes '
        || money_text(n.amount, n.currency) || ', but the payment provider paid ' || money_text(l.paid, n.currency)
        || ' in ' || l.succeeded || CASE WHEN l.succeeded = 1 THEN ' refund (' ELSE ' refunds (' END
        || ids_text(l.succeeded_ids, 'none') || '): ' || money_text(abs(l.paid - n.amount), n.currency)
        || CASE WHEN l.paid > n.amount THEN ' paid too much.' ELSE ' still unpaid.' END AS explanation
FROM core.credit_notes n
JOIN recon.payment_links($business_date) l USING (credit_note_number)
WHERE n.business_date = $business_date
  AND l.succeeded > 0
  AND abs(l.paid - n.amount) > CAST($amount_tolerance AS DECIMAL(18,6))
  AND EXISTS (SELECT 1 FROM state.payment_polls p WHERE p.business_date = $business_date)
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date AND i.source IN ('refund_ledger', 'payment_refunds')
                    AND (i.credit_note_number = n.credit_note_number OR i.order_reference = n.order_reference))
