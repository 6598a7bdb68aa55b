-- Tables every layer shares.
CREATE SCHEMA IF NOT EXISTS recon;

-- Records that failed validation, with the reason; replaced per (source, business_date).
-- The grain columns name what the record was about, where the connector could still read it:
-- a grain a rejected record belongs to is left unjudged by the rules that need that record
-- (core.data_issues), never judged as if the record did not exist.
CREATE TABLE IF NOT EXISTS recon.rejects (
    source VARCHAR NOT NULL,                 -- wms_returns, storefront, refund_ledger, ...
    record_key VARCHAR,
    reason VARCHAR NOT NULL,
    payload VARCHAR,
    business_date DATE NOT NULL,
    order_reference VARCHAR,                 -- the storefront order the record names
    order_line_reference VARCHAR,            -- oc_order_product.order_product_id / lines[].order_item_id
    rma_reference VARCHAR,                   -- RMA-<return_id>
    return_reference VARCHAR,                -- WMS returnReferenceNumber (or an adjustment's tag)
    credit_note_number VARCHAR
);
-- Warehouses created before the grain columns existed.
ALTER TABLE recon.rejects ADD COLUMN IF NOT EXISTS order_reference VARCHAR;
ALTER TABLE recon.rejects ADD COLUMN IF NOT EXISTS order_line_reference VARCHAR;
ALTER TABLE recon.rejects ADD COLUMN IF NOT EXISTS rma_reference VARCHAR;
ALTER TABLE recon.rejects ADD COLUMN IF NOT EXISTS return_reference VARCHAR;
ALTER TABLE recon.rejects ADD COLUMN IF NOT EXISTS credit_note_number VARCHAR;

-- Every application of the retention (retention.days): the cutoff and the rows removed per table.
-- No business date before the latest cutoff can be written again (its raw data is gone).
CREATE TABLE IF NOT EXISTS recon.retention_log (
    business_date DATE NOT NULL,             -- the run that applied it
    cutoff DATE NOT NULL,                    -- rows of business dates before this were thinned
    table_name VARCHAR NOT NULL,
    rows_deleted BIGINT NOT NULL,
    applied_at TIMESTAMP NOT NULL
);
