-- core.data_issues: the records that failed validation (recon.rejects), per grain they name, so
-- that a rule which needs such a record leaves that grain unjudged instead of judging it as if
-- the record did not exist. Storefront and ledger rejects are those of this date's read (both
-- sources are read whole every run); a WMS reject counts until a valid version of that return
-- is fetched on the reject's date or later, and a payment-provider reject (naming its order and
-- credit note from the metadata) until a valid version of that refund is read. A storefront history row names only its RMA: the
-- order comes from the RMA.
INSERT INTO core.data_issues
WITH rejects AS (
    SELECT source, record_key, reason, order_reference, rma_reference, return_reference, credit_note_number,
           business_date
    FROM recon.rejects
    WHERE (business_date = $business_date AND source IN ('storefront', 'refund_ledger'))
       OR (business_date <= $business_date AND source IN ('wms_returns', 'wms_tracking_probes',
                                                          'wms_stock_adjustments', 'payment_refunds'))
),
valid_wms AS (
    SELECT return_reference, max(business_date) AS last_fetched_on FROM (
        SELECT return_reference, business_date FROM raw.wms_returns WHERE business_date <= $business_date
        UNION ALL
        SELECT return_reference, business_date FROM raw.wms_probed_returns WHERE business_date <= $business_date)
    GROUP BY return_reference
),
valid_payments AS (
    SELECT refund_id, max(business_date) AS last_fetched_on FROM raw.payment_refunds
    WHERE business_date <= $business_date GROUP BY refund_id
)
SELECT
    $business_date,
    r.source,
    r.record_key,
    r.reason,
    coalesce(r.order_reference, CAST(ret.order_id AS VARCHAR)),
    r.rma_reference,
    r.return_reference,
    r.credit_note_number
FROM rejects r
LEFT JOIN raw.oc_returns_at($business_date) ret
       ON r.rma_reference = 'RMA-' || ret.return_id
LEFT JOIN valid_wms v
       ON r.source IN ('wms_returns', 'wms_tracking_probes') AND v.return_reference = r.return_reference
LEFT JOIN valid_payments p
       ON r.source = 'payment_refunds' AND p.refund_id = r.record_key
WHERE (r.order_reference IS NOT NULL OR r.rma_reference IS NOT NULL OR r.return_reference IS NOT NULL
       OR r.credit_note_number IS NOT NULL OR r.source = 'payment_refunds')  -- a provider reject names its refund
  AND (v.last_fetched_on IS NULL OR v.last_fetched_on < r.business_date)
  AND (p.last_fetched_on IS NULL OR p.last_fetched_on < r.business_date);
