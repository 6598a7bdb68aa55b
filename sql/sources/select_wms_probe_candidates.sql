-- Storefront RMAs whose tracking number no WMS return explains: the tracking-number probes to
-- make for business date $d (as of $t). An RMA that is closed by a name mapped to REJECTED or
-- CANCELED ($closed_names) needs no parcel; one probed within $cooldown days is not asked again.
WITH tracking AS (
    SELECT return_id, arg_max(tracking_id, date_added) AS tracking_id
    FROM raw.oc_return_history_at($d)
    WHERE tracking_id IS NOT NULL AND date_added < $t
    GROUP BY return_id
),
known AS (
    SELECT return_reference, tracking_id FROM raw.wms_returns WHERE business_date <= $d AND created_at < $t
)
SELECT 'RMA-' || r.return_id AS rma_reference, tr.tracking_id
FROM raw.oc_returns_at($d) r
JOIN tracking tr USING (return_id)
WHERE r.date_added < $t
  AND lower(coalesce(r.return_status_name, '')) NOT IN (SELECT unnest($closed_names))
  AND NOT EXISTS (SELECT 1 FROM known k WHERE k.return_reference = 'RMA-' || r.return_id)
  AND NOT EXISTS (SELECT 1 FROM known k WHERE k.tracking_id = tr.tracking_id)
  AND NOT EXISTS (SELECT 1 FROM raw.wms_tracking_probe_log p
                  WHERE p.rma_reference = 'RMA-' || r.return_id AND p.tracking_id = tr.tracking_id
                    AND p.business_date < $d AND p.business_date > $d - CAST($cooldown AS INTEGER))
ORDER BY r.date_added DESC, r.return_id DESC
LIMIT $limit
