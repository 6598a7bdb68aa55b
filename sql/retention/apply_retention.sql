-- Retention (retention.days = N): rows of business dates before $cutoff (the latest evaluated
-- date minus N days) are removed, keeping exactly what any date >= $cutoff still reads, so a
-- rerun of such a date gives the same tables as before. One statement per table; the caller
-- counts the rows each removes and runs them in one transaction.

-- Tables holding a full copy per business date, read only at their own date. (The refund ledger's
-- raw tables hold the archive once, as every date reads it: nothing of them goes.)
DELETE FROM state.storefront_fetches WHERE business_date < $cutoff;
DELETE FROM raw.wms_stocks WHERE business_date < $cutoff;
DELETE FROM raw.wms_tracking_probe_log WHERE business_date < $cutoff;
-- (a payment-provider reject counts for later dates until a valid version of its refund is read:
-- it stays while none is)
DELETE FROM recon.rejects j WHERE j.business_date < $cutoff AND NOT (
    j.source = 'payment_refunds' AND NOT EXISTS (
        SELECT 1 FROM raw.payment_refunds p WHERE p.refund_id = j.record_key AND p.business_date >= j.business_date));
DELETE FROM core.order_lines WHERE business_date < $cutoff;
DELETE FROM core.rma_lines WHERE business_date < $cutoff;
DELETE FROM core.wms_returns WHERE business_date < $cutoff;
DELETE FROM core.wms_return_units WHERE business_date < $cutoff;
DELETE FROM core.refund_lines WHERE business_date < $cutoff;
DELETE FROM core.stock_adjustment_lines WHERE business_date < $cutoff;
DELETE FROM core.stock_levels WHERE business_date < $cutoff;
DELETE FROM core.data_issues WHERE business_date < $cutoff;
DELETE FROM recon.rma_matches WHERE business_date < $cutoff;
DELETE FROM recon.order_line_positions WHERE business_date < $cutoff;
DELETE FROM core.credit_notes WHERE business_date < $cutoff;
DELETE FROM core.provider_refunds WHERE business_date < $cutoff;
DELETE FROM recon.payment_matches WHERE business_date < $cutoff;
DELETE FROM recon.currency_rates WHERE business_date < $cutoff;
DELETE FROM state.working_builds WHERE business_date < $cutoff;
-- (state.payment_polls stays: one row per date, it says which dates the payment rules judged)

-- Payment-provider refund versions (written when new or changed): a date reads each refund's latest
-- version stored by it, so of the versions stored before the cutoff only the latest one is read.
DELETE FROM raw.payment_refunds v
WHERE v.business_date < $cutoff AND EXISTS (
    SELECT 1 FROM raw.payment_refunds w
    WHERE w.refund_id = v.refund_id AND w.business_date < $cutoff
      AND (w.business_date > v.business_date OR (w.business_date = v.business_date AND w.fetched_at > v.fetched_at)));

-- Storefront versions (change capture): the fetches of dates before the cutoff went above; a
-- closed version that no remaining fetch reads goes (the versions in force at a kept date's fetch,
-- and every current one, stay).
DELETE FROM raw.oc_orders v
WHERE v.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);
DELETE FROM raw.oc_order_lines v
WHERE v.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);
DELETE FROM raw.oc_products v
WHERE v.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);
DELETE FROM raw.oc_returns v
WHERE v.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);
DELETE FROM raw.oc_return_history v
WHERE v.valid_to IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM state.storefront_fetches f WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);

-- WMS return versions (each fetch keeps what changed): a version fetched before the cutoff goes
-- only when another one fetched before the cutoff, updated by the cutoff's T, is later (a date >=
-- cutoff always prefers that one: build_wms_returns takes the latest version updated by T).
DELETE FROM raw.wms_returns v
WHERE v.business_date < $cutoff AND EXISTS (
    SELECT 1 FROM raw.wms_returns w
    WHERE w.return_reference = v.return_reference AND w.business_date < $cutoff AND w.updated_at <= $cutoff_as_of
      AND (w.updated_at > v.updated_at OR (w.updated_at = v.updated_at AND w.business_date > v.business_date)));
DELETE FROM raw.wms_probed_returns v
WHERE v.business_date < $cutoff AND EXISTS (
    SELECT 1 FROM raw.wms_probed_returns w
    WHERE w.return_reference = v.return_reference AND w.business_date < $cutoff AND w.updated_at <= $cutoff_as_of
      AND (w.updated_at > v.updated_at OR (w.updated_at = v.updated_at AND w.business_date > v.business_date)));
-- the units of the versions that went
DELETE FROM raw.wms_return_line_items i
WHERE i.business_date < $cutoff AND NOT EXISTS (
    SELECT 1 FROM raw.wms_returns r
    WHERE r.return_reference = i.return_reference AND r.business_date = i.business_date
      AND r.updated_at IS NOT DISTINCT FROM i.return_updated_at);
DELETE FROM raw.wms_probed_return_line_items i
WHERE i.business_date < $cutoff AND NOT EXISTS (
    SELECT 1 FROM raw.wms_probed_returns r
    WHERE r.return_reference = i.return_reference AND r.business_date = i.business_date
      AND r.updated_at IS NOT DISTINCT FROM i.return_updated_at);

-- Stock adjustments: build_stock_adjustment_lines takes a transaction's latest fetch completed by
-- T; an earlier fetch before the cutoff goes when a later one before the cutoff is completed by
-- the cutoff's T.
DELETE FROM raw.wms_stock_adjustments v
WHERE v.business_date < $cutoff AND EXISTS (
    SELECT 1 FROM raw.wms_stock_adjustments w
    WHERE w.transaction_number = v.transaction_number AND w.business_date > v.business_date
      AND w.business_date < $cutoff AND w.completed_at <= $cutoff_as_of);
DELETE FROM raw.wms_stock_adjustment_lines l
WHERE l.business_date < $cutoff AND NOT EXISTS (
    SELECT 1 FROM raw.wms_stock_adjustments h
    WHERE h.transaction_number = l.transaction_number AND h.business_date = l.business_date);

-- Detections: recon.discrepancies is derived from the whole detection history (first and last
-- detection, the latest row); a detection before the cutoff goes only when it is neither its
-- discrepancy's first nor its last, so every discrepancy, its dates and its ageing stay as they were.
DELETE FROM recon.discrepancy_detections t
USING (
    SELECT discrepancy_id, min(business_date) AS first_on, max(business_date) AS last_on
    FROM recon.discrepancy_detections GROUP BY discrepancy_id
) s
WHERE t.discrepancy_id = s.discrepancy_id AND t.business_date < $cutoff
  AND t.business_date > s.first_on AND t.business_date < s.last_on;
