-- Raw GraphQL RMA platform (sources.md section 5.1), polled incrementally on updatedAt. A version
-- of an RMA order is its (rma_id, updated_at): written only when no earlier date stored it (a
-- quiet day writes nothing); business_date is the date whose run read it. The lines and the status
-- history of each version sit beside it. The canonical layer reads, per RMA order, the latest
-- version updated by T, and its status as of T from the history. Contacts (customer data) and
-- comments are never queried.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.rma_platform_orders (
    business_date DATE NOT NULL,
    rma_id VARCHAR NOT NULL,                 -- the platform's id
    updated_at TIMESTAMP NOT NULL,           -- the version (UTC)
    return_reference VARCHAR NOT NULL,       -- returnReference: a pre-authorised WMS return carries it
    external_reference VARCHAR,
    order_reference VARCHAR,                 -- the first linkedOrders[].orderReference
    tracking_id VARCHAR,                     -- the latest shipment's trackingNumber
    expected_resolution VARCHAR,
    processing_status VARCHAR,               -- as read (current); the status at T comes from the history
    delivery_status VARCHAR,
    financial_status VARCHAR,
    fulfillment_status VARCHAR,
    currency VARCHAR,
    refunded_amount DECIMAL(18,4),           -- REFUND resolutions REFUNDED / PARTIALLY_REFUNDED
    received_at TIMESTAMP,
    issued_at TIMESTAMP,
    fetched_at TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.rma_platform_lines (
    business_date DATE NOT NULL,
    rma_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,           -- the version of the order this line belongs to
    line_id VARCHAR NOT NULL,
    sku VARCHAR NOT NULL,
    quantity INTEGER NOT NULL,
    line_state VARCHAR,
    order_line_reference VARCHAR             -- the storefront order_product_id, when known
);

CREATE TABLE IF NOT EXISTS raw.rma_platform_status_history (
    business_date DATE NOT NULL,
    rma_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    dimension VARCHAR NOT NULL,              -- PROCESSING | DELIVERY | FINANCIAL | FULFILLMENT
    status VARCHAR NOT NULL,
    changed_at TIMESTAMP NOT NULL            -- the entry's `at` (UTC)
);
