-- Raw refund ledger: one row per credit note version and order line, parsed from the OMS
-- message archive. Every distinct version of a credit note is kept (the reconciliation picks
-- the latest one dated <= T); identical redeliveries collapse into one version
-- (delivery_count). Amounts are the exact decimals of the messages (three-decimal currencies,
-- sub-cent VAT splits). Staff user names are not kept.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.refund_lines (
    business_date DATE NOT NULL,
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
    delivery_count INTEGER                   -- how many times this version was delivered
);
