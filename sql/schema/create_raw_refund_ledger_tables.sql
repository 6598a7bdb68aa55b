-- Raw refund ledger, read incrementally from the OMS message archive (sources.md section 3).
-- Each table holds the archive as it is now, once (not a copy per business date): a run parses
-- only the files that are new or changed since the manifest, forgets what a removed file gave,
-- and re-resolves only the credit notes those files name (pipelines/resources/refund_store.py).
-- Amounts are the exact decimals of the messages (three-decimal currencies, sub-cent VAT
-- splits). Staff user names are not kept.
CREATE SCHEMA IF NOT EXISTS raw;
-- state: what the incremental reader keeps between runs (its manifest and the yield of each file);
-- not assets of their own: raw.refund_lines is resolved from them.
CREATE SCHEMA IF NOT EXISTS state;

-- raw.refund_lines: one row per credit note version in force and order line. Every distinct
-- version of a credit note is kept (the reconciliation picks the latest one dated <= T);
-- identical redeliveries collapse into one version (delivery_count), in every file of the
-- archive; of versions sharing a version_date only the first delivered one (relative path, then
-- line order) is here, the others are conflicting redeliveries (state.refund_ledger_conflicts).
CREATE TABLE IF NOT EXISTS raw.refund_lines (
    credit_note_number VARCHAR NOT NULL,
    version_key VARCHAR NOT NULL,            -- hash of the version's parsed content
    version_date TIMESTAMP,                  -- status.date, else credit_note_date: when this version became true
    order_line_reference VARCHAR NOT NULL,   -- lines[].order_item_id (order_product_id or SHIPPING)
    order_line VARCHAR,                      -- lines[].order_line
    order_reference VARCHAR,                 -- params.refund.order_id
    store_id VARCHAR,
    sales_channel_id VARCHAR,
    credit_note_date TIMESTAMP,
    rma_reference VARCHAR,
    refund_type VARCHAR,
    refund_reason VARCHAR,
    status_code VARCHAR,
    status_date TIMESTAMP,
    currency VARCHAR,                        -- null: the order's currency
    line_reason VARCHAR,
    refunded_gross DECIMAL(38,10),           -- sum of cost_gross of payments with status REFUNDED
    refunded_net DECIMAL(38,10),
    refunded_vat DECIMAL(38,10),
    total_gross DECIMAL(38,10),              -- sum of cost_gross of all payments
    payment_count INTEGER,
    message_id VARCHAR,                      -- of the version's first delivery
    source_file VARCHAR,
    source_line INTEGER,
    delivery_count INTEGER                   -- how many times this version was delivered, all files
);
-- a warehouse of the per-date layout: its copies go (the first incremental run reloads the archive)
ALTER TABLE raw.refund_lines DROP COLUMN IF EXISTS business_date;

-- The manifest: one row per archive file whose yield is stored below.
CREATE TABLE IF NOT EXISTS state.refund_ledger_files (
    path VARCHAR NOT NULL,                   -- relative to the archive, '/' separated
    size BIGINT NOT NULL,                    -- bytes on disk (compressed for .gz)
    mtime_ns BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,                 -- of the bytes on disk
    lines INTEGER NOT NULL,                  -- every line, blank ones included
    messages INTEGER NOT NULL,               -- JSON-RPC messages, any method
    refund_messages INTEGER NOT NULL,
    ignored_other_methods INTEGER NOT NULL,
    read_on DATE NOT NULL,                   -- business date of the run that parsed it
    read_at TIMESTAMP NOT NULL               -- when (UTC)
);

-- Every valid refund message of every file: which version it carries, where it is.
CREATE TABLE IF NOT EXISTS state.refund_ledger_deliveries (
    path VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    credit_note_number VARCHAR NOT NULL,
    version_key VARCHAR NOT NULL,
    version_date TIMESTAMP NOT NULL,
    status_dated BOOLEAN NOT NULL,           -- the version date is status.date (else credit_note_date)
    message_id VARCHAR,
    order_reference VARCHAR,
    payload VARCHAR                          -- records.base.payload of the message (for a conflict reject)
);

-- The content of every distinct version some file delivers (the ones not in force too: a
-- conflicting redelivery comes into force when the file of the first delivery goes), one row
-- per version and order line: the columns of raw.refund_lines without the delivery ones.
CREATE TABLE IF NOT EXISTS state.refund_versions (
    credit_note_number VARCHAR NOT NULL,
    version_key VARCHAR NOT NULL,
    version_date TIMESTAMP,
    order_line_reference VARCHAR NOT NULL,
    order_line VARCHAR,
    order_reference VARCHAR,
    store_id VARCHAR,
    sales_channel_id VARCHAR,
    credit_note_date TIMESTAMP,
    rma_reference VARCHAR,
    refund_type VARCHAR,
    refund_reason VARCHAR,
    status_code VARCHAR,
    status_date TIMESTAMP,
    currency VARCHAR,
    line_reason VARCHAR,
    refunded_gross DECIMAL(38,10),
    refunded_net DECIMAL(38,10),
    refunded_vat DECIMAL(38,10),
    total_gross DECIMAL(38,10),
    payment_count INTEGER
);

-- Lines of a file that do not load (the columns of recon.rejects, with their place).
CREATE TABLE IF NOT EXISTS state.refund_ledger_file_rejects (
    path VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    record_key VARCHAR,
    reason VARCHAR,
    payload VARCHAR,
    order_reference VARCHAR,
    order_line_reference VARCHAR,
    rma_reference VARCHAR,
    return_reference VARCHAR,
    credit_note_number VARCHAR
);

-- Deliveries rejected as conflicting redeliveries, across files (same columns).
CREATE TABLE IF NOT EXISTS state.refund_ledger_conflicts (
    path VARCHAR NOT NULL,
    line INTEGER NOT NULL,
    source VARCHAR NOT NULL,
    record_key VARCHAR,
    reason VARCHAR,
    payload VARCHAR,
    order_reference VARCHAR,
    order_line_reference VARCHAR,
    rma_reference VARCHAR,
    return_reference VARCHAR,
    credit_note_number VARCHAR
);
