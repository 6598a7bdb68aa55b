-- The canonical model (reconciliation.md), rebuilt for each business date D as of T = D+1 00:00 UTC.
-- Every table is partitioned by business_date and replaced on rerun.
CREATE SCHEMA IF NOT EXISTS core;

CREATE TABLE IF NOT EXISTS core.order_lines (
    business_date DATE NOT NULL,
    order_reference VARCHAR NOT NULL,        -- order_id as text
    order_line_reference VARCHAR NOT NULL,   -- order_product_id as text
    product_id BIGINT,
    sku VARCHAR,
    ordered_quantity INTEGER,
    unit_price DECIMAL(15,4),                -- store currency
    unit_tax DECIMAL(15,4),
    currency_value DECIMAL(15,8),
    currency VARCHAR,                        -- the order's currency
    unit_gross DECIMAL(24,8),                -- (price + tax) * currency_value, order currency
    order_date TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.rma_lines (
    business_date DATE NOT NULL,
    rma_reference VARCHAR NOT NULL,          -- RMA-<return_id>
    return_id BIGINT NOT NULL,
    order_reference VARCHAR,
    order_line_reference VARCHAR,            -- null when the order has no line for the product
    sku VARCHAR,
    quantity INTEGER,
    status_name VARCHAR,                     -- storefront status name as of T
    status VARCHAR,                          -- canonical status as of T
    status_since TIMESTAMP,
    authorized_since TIMESTAMP,              -- start of the current AUTHORIZED spell, when AUTHORIZED
    action_name VARCHAR,
    action VARCHAR,                          -- canonical action (current)
    tracking_id VARCHAR,                     -- latest tracking number in history as of T
    created_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.wms_returns (
    business_date DATE NOT NULL,
    return_reference VARCHAR NOT NULL,
    order_reference VARCHAR,
    tracking_id VARCHAR,
    state VARCHAR,                           -- as of T, from the timestamps
    created_at TIMESTAMP,
    arrived_at TIMESTAMP,                    -- null if after T
    completed_at TIMESTAMP,                  -- null if after T
    updated_at TIMESTAMP,
    fetched_via VARCHAR,                     -- poll | probe
    reported_state VARCHAR                   -- the state the WMS reported (now)
);

CREATE TABLE IF NOT EXISTS core.wms_return_units (
    business_date DATE NOT NULL,
    return_reference VARCHAR NOT NULL,
    line_item_reference VARCHAR NOT NULL,
    sku VARCHAR,
    state VARCHAR,                           -- as of T: graded state once processed, else WaitingToBeProcessed
    processed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.refund_lines (
    business_date DATE NOT NULL,
    credit_note_number VARCHAR NOT NULL,
    order_reference VARCHAR,
    order_line_reference VARCHAR NOT NULL,
    rma_reference VARCHAR,
    refund_type VARCHAR,
    status_code VARCHAR,
    is_money_out BOOLEAN,                    -- refund RELEASED and a payment REFUNDED
    amount DECIMAL(18,2),                    -- money out (gross)
    currency VARCHAR,
    credit_note_date TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.stock_adjustment_lines (
    business_date DATE NOT NULL,
    transaction_number VARCHAR NOT NULL,
    transaction_type VARCHAR,
    tag VARCHAR,
    return_reference VARCHAR,                -- the tag, when it names a known WMS return
    sku VARCHAR,
    net_units INTEGER,                       -- found + released - lost - quarantined
    completed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.stock_levels (
    business_date DATE NOT NULL,
    sku VARCHAR NOT NULL,
    wms_available_stock BIGINT,
    storefront_quantity BIGINT,
    storefront_price DECIMAL(15,4),
    read_at TIMESTAMP
);
