-- The canonical model (reconciliation.md), rebuilt for each business date D as of T = D+1 00:00 UTC.
-- Every table is partitioned by business_date and replaced on rerun.
CREATE SCHEMA IF NOT EXISTS core;

-- The order line of the rules: one row per (order, SKU). Option variants (several
-- oc_order_product rows of one SKU in one order) are one order line: quantities add up and
-- the unit gross is their total gross / total quantity.
CREATE TABLE IF NOT EXISTS core.order_lines (
    business_date DATE NOT NULL,
    order_reference VARCHAR NOT NULL,        -- order_id as text
    order_line_reference VARCHAR NOT NULL,   -- the rows' order_product_ids, comma-separated, numeric order
    sku VARCHAR,                             -- trimmed model of the row with the lowest order_product_id
    sku_key VARCHAR,                         -- lower(trim(model)): how RMAs find their order line
    row_count INTEGER,                       -- oc_order_product rows of this SKU in the order
    ordered_quantity INTEGER,
    gross_total DECIMAL(38,12),              -- sum of (price + tax) * currency_value * quantity
    currency_value DECIMAL(15,8),
    currency VARCHAR,                        -- the order's currency
    unit_gross DECIMAL(24,8),                -- gross_total / ordered_quantity, order currency, half-up
    order_date TIMESTAMP
);

CREATE TABLE IF NOT EXISTS core.rma_lines (
    business_date DATE NOT NULL,
    source VARCHAR NOT NULL,                 -- the RMA system: opencart
    rma_reference VARCHAR NOT NULL,          -- RMA-<return_id>
    return_id BIGINT NOT NULL,
    order_reference VARCHAR,
    order_line_reference VARCHAR,            -- the order line's rows (order + model); null when none
    sku VARCHAR,                             -- the order line's SKU (else the RMA's trimmed model)
    sku_key VARCHAR,                         -- lower(trim(model))
    quantity INTEGER,
    status_name VARCHAR,                     -- storefront status name as of T
    status VARCHAR,                          -- canonical status as of T; null when the map does not know the name
    status_since TIMESTAMP,
    authorized_since TIMESTAMP,              -- start of the current AUTHORIZED spell, when AUTHORIZED
    action_name VARCHAR,
    action VARCHAR,                          -- canonical action (current); null when none or unknown
    action_known BOOLEAN,                    -- false when an action is set but its name is not in the map
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

-- Each credit note in its state at T (its latest version dated <= T), per order line it names.
CREATE TABLE IF NOT EXISTS core.refund_lines (
    business_date DATE NOT NULL,
    credit_note_number VARCHAR NOT NULL,
    order_reference VARCHAR,
    order_line_reference VARCHAR NOT NULL,   -- lines[].order_item_id: an order_product_id or SHIPPING
    sku VARCHAR,                             -- the SKU of that order_product row (its order line of the rules)
    sku_key VARCHAR,                         -- null when the order (not abandoned) has no such row
    rma_reference VARCHAR,
    refund_type VARCHAR,
    status_code VARCHAR,
    is_money_out BOOLEAN,                    -- refund RELEASED and a payment REFUNDED
    amount DECIMAL(38,10),                   -- money out (gross), exact
    currency VARCHAR,                        -- the refund's currency (else the order's)
    order_currency VARCHAR,                  -- the order's currency_code (null when the order is unknown)
    credit_note_date TIMESTAMP,
    version_date TIMESTAMP,                  -- date of the version in force at T
    version_key VARCHAR
);

-- One row per credit note in force at T (its latest version by then): what the shop owes.
-- amount = the money-out payments of all its lines, SHIPPING included (0 unless RELEASED).
CREATE TABLE IF NOT EXISTS core.credit_notes (
    business_date DATE NOT NULL,
    credit_note_number VARCHAR NOT NULL,
    order_reference VARCHAR,
    currency VARCHAR,                        -- the note's currency (else the order's)
    status_code VARCHAR,
    is_money_out BOOLEAN,                    -- RELEASED with a REFUNDED payment on some line
    amount DECIMAL(38,10),
    credit_note_date TIMESTAMP,
    status_date TIMESTAMP                    -- date of the version in force (status.date): when released
);

-- One row per payment-provider refund created by T, as the latest read by D saw it.
CREATE TABLE IF NOT EXISTS core.provider_refunds (
    business_date DATE NOT NULL,
    refund_id VARCHAR NOT NULL,
    amount DECIMAL(38,10) NOT NULL,
    currency VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    order_reference VARCHAR,                 -- metadata.order_id
    credit_note_number VARCHAR,              -- metadata.credit_note_number
    failure_reason VARCHAR
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

-- Records that failed validation, per what they name: the grains the rules leave unjudged
-- (an order, an RMA, a WMS return), with the reason. Built from recon.rejects.
CREATE TABLE IF NOT EXISTS core.data_issues (
    business_date DATE NOT NULL,
    source VARCHAR NOT NULL,
    record_key VARCHAR,
    reason VARCHAR,
    order_reference VARCHAR,
    rma_reference VARCHAR,
    return_reference VARCHAR,
    credit_note_number VARCHAR
);
