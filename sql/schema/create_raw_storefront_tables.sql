-- Raw OpenCart data: a snapshot of the storefront tables per business date (replaced on rerun).
-- Personal data (names, email, telephone) and free-text comments are never copied here:
-- only the tracking number extracted from a history comment is kept.
CREATE SCHEMA IF NOT EXISTS raw;

CREATE TABLE IF NOT EXISTS raw.oc_orders (
    business_date DATE NOT NULL,
    order_id BIGINT NOT NULL,
    store_id INTEGER,
    customer_id BIGINT,
    total DECIMAL(15,4),
    order_status_id INTEGER,
    order_status_name VARCHAR,
    currency_code VARCHAR,
    currency_value DECIMAL(15,8),
    date_added TIMESTAMP,
    date_modified TIMESTAMP
);

CREATE TABLE IF NOT EXISTS raw.oc_order_lines (
    business_date DATE NOT NULL,
    order_product_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    product_id BIGINT,
    name VARCHAR,
    model VARCHAR,                           -- the SKU
    quantity INTEGER,
    price DECIMAL(15,4),                     -- per unit, store default currency
    tax DECIMAL(15,4),                       -- per unit, store default currency
    total DECIMAL(15,4)
);

CREATE TABLE IF NOT EXISTS raw.oc_products (
    business_date DATE NOT NULL,
    product_id BIGINT NOT NULL,
    model VARCHAR,
    quantity INTEGER,                        -- storefront stock, as read by the run
    price DECIMAL(15,4),
    subtract INTEGER,
    status INTEGER,
    date_modified TIMESTAMP
);

CREATE TABLE IF NOT EXISTS raw.oc_returns (
    business_date DATE NOT NULL,
    return_id BIGINT NOT NULL,
    order_id BIGINT,
    product_id BIGINT,
    customer_id BIGINT,
    product VARCHAR,
    model VARCHAR,
    quantity INTEGER,
    opened INTEGER,
    return_reason_id INTEGER,
    return_reason_name VARCHAR,
    return_action_id INTEGER,
    return_action_name VARCHAR,
    return_status_id INTEGER,
    return_status_name VARCHAR,
    date_ordered DATE,
    date_added TIMESTAMP,
    date_modified TIMESTAMP
);

CREATE TABLE IF NOT EXISTS raw.oc_return_history (
    business_date DATE NOT NULL,
    return_history_id BIGINT NOT NULL,
    return_id BIGINT NOT NULL,
    return_status_id INTEGER,
    return_status_name VARCHAR,
    notify INTEGER,
    tracking_id VARCHAR,                     -- extracted from the comment by the tracking pattern
    date_added TIMESTAMP
);
