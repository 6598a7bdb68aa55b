-- core.provider_refunds: every payment-provider refund created by T, in its latest version read by
-- D's run or an earlier one. Its status is the one read then (the API keeps no history: the
-- exception to as-of-T, like stock levels); created <= T applies.
INSERT INTO core.provider_refunds
SELECT
    $business_date,
    refund_id,
    amount,
    currency,
    created,
    status,
    order_id,
    credit_note_number,
    failure_reason
FROM raw.payment_refunds_at($business_date)
WHERE created <= $as_of;
