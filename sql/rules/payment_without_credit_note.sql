-- PAYMENT_WITHOUT_CREDIT_NOTE (provider refund): a succeeded provider refund created more than
-- payment_match_days before T is linked to no credit note (recon.payment_matches): money sent
-- that the ledger does not owe. A refund whose metadata names an order or credit note that a
-- rejected ledger line names is not judged (the rejected line may be its note), nor one whose
-- latest read was rejected (its stored version is stale).
SELECT
    'provider_refund:' || r.refund_id AS grain_key,
    r.order_reference, NULL AS order_line_reference, NULL AS rma_reference, NULL AS return_reference,
    NULL AS tracking_id, NULL AS sku, r.refund_id AS refund_reference,
    NULL AS quantity_gap, r.amount AS amount_at_risk, r.currency,
    json_object('provider_refunds', to_json([{'id': r.refund_id, 'status': r.status, 'amount': r.amount,
                                              'currency': r.currency, 'created': r.created}]),
                'match_method', NULL, 'metadata_order_id', r.order_reference,
                'metadata_credit_note_number', r.credit_note_number) AS details,
    'The payment provider sent refund ' || r.refund_id || ' of ' || money_text(r.amount, r.currency) || ' on '
        || strftime(r.created, '%Y-%m-%d') || ' ('
        || CASE WHEN r.order_reference IS NULL AND r.credit_note_number IS NULL THEN 'no order or credit note in its metadata'
                ELSE concat_ws(', ', 'order ' || r.order_reference, 'credit note ' || r.credit_note_number)
                     || ' in its metadata' END
        || '), but no credit note matches it: money out that the ledger does not owe.' AS explanation
FROM core.provider_refunds r
WHERE r.business_date = $business_date
  AND r.status = 'succeeded'
  AND r.created < $as_of - to_days(CAST($payment_match_days AS INTEGER))
  AND NOT EXISTS (SELECT 1 FROM recon.payment_matches m
                  WHERE m.business_date = $business_date AND m.refund_id = r.refund_id)
  AND EXISTS (SELECT 1 FROM state.payment_polls p WHERE p.business_date = $business_date)
  AND NOT EXISTS (SELECT 1 FROM core.data_issues i
                  WHERE i.business_date = $business_date
                    AND ((i.source = 'refund_ledger' AND (i.credit_note_number = r.credit_note_number
                                                          OR i.order_reference = r.order_reference))
                         OR (i.source = 'payment_refunds' AND i.record_key = r.refund_id)))
