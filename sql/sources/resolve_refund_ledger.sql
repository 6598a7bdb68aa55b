-- The refund ledger's credit notes in temp table _ledger_notes, resolved again from the
-- deliveries of every file (pipelines/resources/refund_store.py runs it after replacing the
-- yield of the files it read or lost, in the same transaction):
-- - per credit note and version_date, the first delivery in relative path then line order
--   decides the version: every delivery of that version counts (delivery_count, first
--   delivery's file, line and message id); a delivery of another version with that date is a
--   conflicting redelivery (a reject naming the first delivery), as the whole-archive reader
--   RefundLedgerResource.read_ledger decides it;
-- - state.refund_versions keeps only versions some delivery still carries.
CREATE OR REPLACE TEMP TABLE _ledger_ranked AS
SELECT d.path, d.line, d.credit_note_number, d.version_key, d.version_date, d.status_dated, d.message_id,
       d.order_reference, d.payload,
       first_value(d.version_key) OVER w AS kept_key,
       first_value(d.path) OVER w AS kept_path,
       first_value(d.line) OVER w AS kept_line
FROM state.refund_ledger_deliveries d
WHERE d.credit_note_number IN (SELECT credit_note_number FROM _ledger_notes)
WINDOW w AS (PARTITION BY d.credit_note_number, d.version_date ORDER BY d.path, d.line);

DELETE FROM state.refund_versions
WHERE credit_note_number IN (SELECT credit_note_number FROM _ledger_notes)
  AND version_key NOT IN (SELECT version_key FROM _ledger_ranked);

DELETE FROM raw.refund_lines WHERE credit_note_number IN (SELECT credit_note_number FROM _ledger_notes);

INSERT INTO raw.refund_lines
WITH kept AS (
    SELECT version_key, message_id, path AS source_file, line AS source_line,
           CAST(count(*) OVER (PARTITION BY version_key) AS INTEGER) AS delivery_count
    FROM _ledger_ranked
    WHERE version_key = kept_key
    QUALIFY row_number() OVER (PARTITION BY version_key ORDER BY path, line) = 1
)
SELECT v.credit_note_number, v.version_key, v.version_date, v.order_line_reference, v.order_line,
       v.order_reference, v.store_id, v.sales_channel_id, v.credit_note_date, v.rma_reference, v.refund_type,
       v.refund_reason, v.status_code, v.status_date, v.currency, v.line_reason, v.refunded_gross,
       v.refunded_net, v.refunded_vat, v.total_gross, v.payment_count,
       k.message_id, k.source_file, k.source_line, k.delivery_count
FROM state.refund_versions v JOIN kept k USING (version_key)
ORDER BY k.source_file, k.source_line, v.order_line_reference;

DELETE FROM state.refund_ledger_conflicts WHERE credit_note_number IN (SELECT credit_note_number FROM _ledger_notes);

-- the reason as the reader words it (Python's datetime.isoformat: seconds, microseconds when any)
INSERT INTO state.refund_ledger_conflicts
SELECT path, line, 'refund_ledger', path || ':' || line || ':' || credit_note_number,
       'conflicting redelivery: credit note ' || credit_note_number || ' was first delivered at '
       || kept_path || ':' || kept_line || ' with the same '
       || CASE WHEN status_dated THEN 'status date' ELSE 'version date (no status date; credit note date)' END
       || ' ' || strftime(version_date, '%Y-%m-%dT%H:%M:%S')
       || CASE WHEN microsecond(version_date) % 1000000 = 0 THEN ''
               ELSE '.' || lpad(CAST(microsecond(version_date) % 1000000 AS VARCHAR), 6, '0') END
       || ' and different content; the first delivery is kept',
       payload, order_reference, NULL, NULL, NULL, credit_note_number
FROM _ledger_ranked
WHERE version_key <> kept_key
ORDER BY path, line;

DROP TABLE _ledger_ranked;
