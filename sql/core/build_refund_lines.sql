-- core.refund_lines: credit note lines dated <= T (already one per credit note x order line),
-- with money out = refund RELEASED and a payment REFUNDED; a missing currency is the order's.
INSERT INTO core.refund_lines
SELECT
    $business_date,
    f.credit_note_number,
    f.order_reference,
    f.order_line_reference,
    f.rma_reference,
    f.refund_type,
    f.status_code,
    f.status_code = 'RELEASED' AND f.refunded_gross > 0,
    CASE WHEN f.status_code = 'RELEASED' THEN f.refunded_gross ELSE 0 END,
    coalesce(f.currency, o.currency_code),
    f.credit_note_date
FROM raw.refund_lines f
LEFT JOIN raw.oc_orders o
       ON o.business_date = $business_date AND CAST(o.order_id AS VARCHAR) = f.order_reference
WHERE f.business_date = $business_date AND f.credit_note_date <= $as_of;
