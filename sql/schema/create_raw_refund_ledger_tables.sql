-- Raw refund ledger: one row per credit note line, parsed from the OMS message archive.
-- Redelivered messages are collapsed to one before loading. Staff user names are not kept.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.refund_lines (
    business_date DATE NOT NULL,
    credit_note_number VARCHAR NOT NULL,
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
    refunded_gross DECIMAL(18,2),            -- sum of cost_gross of payments with status REFUNDED
    refunded_net DECIMAL(18,2),
    refunded_vat DECIMAL(18,2),
    total_gross DECIMAL(18,2),               -- sum of cost_gross of all payments
    payment_count INTEGER,
    message_id VARCHAR,
    source_file VARCHAR,
    source_line INTEGER,
    delivery_count INTEGER                   -- how many times the message was delivered
);
