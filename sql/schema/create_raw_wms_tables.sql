-- Raw WMS data as fetched from the OPLOG-style API. Every table is partitioned by the
-- business date of the run that fetched it (replaced on rerun). No free-text notes are kept.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.wms_returns (
    business_date DATE NOT NULL,
    return_reference VARCHAR NOT NULL,      -- returnReferenceNumber
    source VARCHAR,
    sales_order_channel VARCHAR,
    order_reference VARCHAR,                -- salesOrderReferenceNumber
    state VARCHAR,
    tracking_id VARCHAR,
    cargo_carrier VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    arrived_at TIMESTAMP,                   -- arrivedToWarehouseAt
    completed_at TIMESTAMP,
    courier_request VARCHAR,
    tag VARCHAR,
    fetched_via VARCHAR NOT NULL,           -- poll | sweep | probe
    fetched_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.wms_return_line_items (
    business_date DATE NOT NULL,
    return_reference VARCHAR NOT NULL,
    return_updated_at TIMESTAMP,            -- version of the return this item list belongs to
    line_item_reference VARCHAR NOT NULL,
    sku VARCHAR,
    processed_at TIMESTAMP,
    state VARCHAR,
    damaged_state VARCHAR,
    serial_number VARCHAR
);

CREATE TABLE IF NOT EXISTS raw.wms_stock_adjustments (
    business_date DATE NOT NULL,
    adjustment_id VARCHAR,
    transaction_number VARCHAR NOT NULL,
    transaction_type VARCHAR,
    completed_at TIMESTAMP,
    tag VARCHAR
);

CREATE TABLE IF NOT EXISTS raw.wms_stock_adjustment_lines (
    business_date DATE NOT NULL,
    transaction_number VARCHAR NOT NULL,
    line_id VARCHAR,
    product_name VARCHAR,
    sku VARCHAR,
    lost_amount INTEGER,
    found_amount INTEGER,
    put_in_quarantine_amount INTEGER,
    release_from_quarantine_amount INTEGER
);

CREATE TABLE IF NOT EXISTS raw.wms_stocks (
    business_date DATE NOT NULL,
    sku VARCHAR NOT NULL,
    name VARCHAR,
    total_stock_amount INTEGER,
    available_stock INTEGER,
    reserved_stock INTEGER,
    received_item_amount INTEGER,
    damaged_item_amount INTEGER,
    expired_amount INTEGER,
    lost_item_amount INTEGER,
    updated_at TIMESTAMP,
    read_at TIMESTAMP NOT NULL
);

-- Returns found by asking GET /Returns?trackingId=... for storefront RMAs whose tracking
-- number matches no polled return (e.g. parcels filed under the wrong order).
CREATE TABLE IF NOT EXISTS raw.wms_probed_returns (
    business_date DATE NOT NULL,
    probed_for_rma VARCHAR NOT NULL,        -- RMA-<id> whose tracking number led here
    probed_tracking_id VARCHAR NOT NULL,
    return_reference VARCHAR NOT NULL,
    source VARCHAR,
    sales_order_channel VARCHAR,
    order_reference VARCHAR,
    state VARCHAR,
    tracking_id VARCHAR,
    cargo_carrier VARCHAR,
    created_at TIMESTAMP,
    updated_at TIMESTAMP,
    arrived_at TIMESTAMP,
    completed_at TIMESTAMP,
    courier_request VARCHAR,
    tag VARCHAR,
    fetched_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.wms_probed_return_line_items (
    business_date DATE NOT NULL,
    return_reference VARCHAR NOT NULL,
    return_updated_at TIMESTAMP,
    line_item_reference VARCHAR NOT NULL,
    sku VARCHAR,
    processed_at TIMESTAMP,
    state VARCHAR,
    damaged_state VARCHAR,
    serial_number VARCHAR
);

-- Every tracking-number probe made (found or not), so an RMA whose parcel is still in transit
-- is not asked about again every day (cooldown in the configuration).
CREATE TABLE IF NOT EXISTS raw.wms_tracking_probe_log (
    business_date DATE NOT NULL,
    rma_reference VARCHAR NOT NULL,
    tracking_id VARCHAR NOT NULL,
    returns_found INTEGER NOT NULL,
    probed_at TIMESTAMP NOT NULL
);

-- when each stock adjustment was fetched: its watermark is capped there (a completedAt in the
-- future cannot stop later polls); null on rows stored before this column existed
ALTER TABLE raw.wms_stock_adjustments ADD COLUMN IF NOT EXISTS fetched_at TIMESTAMP;
