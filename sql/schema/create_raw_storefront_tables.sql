-- Raw OpenCart data, kept as versions (change capture). Each run reads the storefront in full and
-- validates every row; a version is written only for a row that is new or changed, and the
-- current version of a row changed or gone is closed (pipelines/resources/storefront_versions.py
-- runs sql/sources/merge_into_storefront_versions.sql). A version is in force from the fetch that
-- first saw it (valid_from) until the first fetch that no longer did (valid_to, exclusive; null:
-- in force now); row_hash is the md5 of its columns as JSON. state.storefront_fetches keeps each
-- business date's latest fetch, so what a date read is the versions in force at its fetch time:
-- raw.oc_<table>_at(business_date) below gives exactly the snapshot that fetch would have copied.
-- Personal data (names, email, telephone) and free-text comments are never copied here:
-- only the tracking number extracted from a history comment is kept.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS state;

CREATE TABLE IF NOT EXISTS state.storefront_fetches (
    business_date DATE NOT NULL,             -- one row per business date: its latest storefront read
    fetched_at TIMESTAMP NOT NULL            -- when (UTC); strictly increasing across runs
);

CREATE TABLE IF NOT EXISTS raw.oc_orders (
    order_id BIGINT NOT NULL,
    store_id INTEGER,
    customer_id BIGINT,
    total DECIMAL(15,4),
    order_status_id INTEGER,
    order_status_name VARCHAR,
    currency_code VARCHAR,
    currency_value DECIMAL(15,8),
    date_added TIMESTAMP,
    date_modified TIMESTAMP,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    row_hash VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.oc_order_lines (
    order_product_id BIGINT NOT NULL,
    order_id BIGINT NOT NULL,
    product_id BIGINT,
    name VARCHAR,
    model VARCHAR,                           -- the SKU
    quantity INTEGER,
    price DECIMAL(15,4),                     -- per unit, store default currency
    tax DECIMAL(15,4),                       -- per unit, store default currency
    total DECIMAL(15,4),
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    row_hash VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.oc_products (
    product_id BIGINT NOT NULL,
    model VARCHAR,
    quantity INTEGER,                        -- storefront stock, as read by the run
    price DECIMAL(15,4),
    subtract INTEGER,
    status INTEGER,
    date_modified TIMESTAMP,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    row_hash VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.oc_returns (
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
    date_modified TIMESTAMP,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    row_hash VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS raw.oc_return_history (
    return_history_id BIGINT NOT NULL,
    return_id BIGINT NOT NULL,
    return_status_id INTEGER,
    return_status_name VARCHAR,
    notify INTEGER,
    tracking_id VARCHAR,                     -- extracted from the comment by the tracking pattern
    date_added TIMESTAMP,
    valid_from TIMESTAMP NOT NULL,
    valid_to TIMESTAMP,
    row_hash VARCHAR NOT NULL
);

-- A warehouse of the per-date layout (a full copy per business date, column business_date):
-- its copies and fetch records go, and the next storefront run reads everything as first versions.
-- (On a warehouse of this layout these statements change nothing.)
ALTER TABLE raw.oc_orders ADD COLUMN IF NOT EXISTS valid_from TIMESTAMP;
ALTER TABLE raw.oc_orders ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
ALTER TABLE raw.oc_orders ADD COLUMN IF NOT EXISTS row_hash VARCHAR;
DELETE FROM raw.oc_orders WHERE valid_from IS NULL;
ALTER TABLE raw.oc_orders DROP COLUMN IF EXISTS business_date;
ALTER TABLE raw.oc_order_lines ADD COLUMN IF NOT EXISTS valid_from TIMESTAMP;
ALTER TABLE raw.oc_order_lines ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
ALTER TABLE raw.oc_order_lines ADD COLUMN IF NOT EXISTS row_hash VARCHAR;
DELETE FROM raw.oc_order_lines WHERE valid_from IS NULL;
ALTER TABLE raw.oc_order_lines DROP COLUMN IF EXISTS business_date;
ALTER TABLE raw.oc_products ADD COLUMN IF NOT EXISTS valid_from TIMESTAMP;
ALTER TABLE raw.oc_products ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
ALTER TABLE raw.oc_products ADD COLUMN IF NOT EXISTS row_hash VARCHAR;
DELETE FROM raw.oc_products WHERE valid_from IS NULL;
ALTER TABLE raw.oc_products DROP COLUMN IF EXISTS business_date;
ALTER TABLE raw.oc_returns ADD COLUMN IF NOT EXISTS valid_from TIMESTAMP;
ALTER TABLE raw.oc_returns ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
ALTER TABLE raw.oc_returns ADD COLUMN IF NOT EXISTS row_hash VARCHAR;
DELETE FROM raw.oc_returns WHERE valid_from IS NULL;
ALTER TABLE raw.oc_returns DROP COLUMN IF EXISTS business_date;
ALTER TABLE raw.oc_return_history ADD COLUMN IF NOT EXISTS valid_from TIMESTAMP;
ALTER TABLE raw.oc_return_history ADD COLUMN IF NOT EXISTS valid_to TIMESTAMP;
ALTER TABLE raw.oc_return_history ADD COLUMN IF NOT EXISTS row_hash VARCHAR;
DELETE FROM raw.oc_return_history WHERE valid_from IS NULL;
ALTER TABLE raw.oc_return_history DROP COLUMN IF EXISTS business_date;

-- The rows a business date read: the versions in force at its fetch (none if it has no fetch).
CREATE OR REPLACE MACRO raw.oc_orders_at(d) AS TABLE
    SELECT v.* EXCLUDE (valid_from, valid_to, row_hash)
    FROM raw.oc_orders v JOIN state.storefront_fetches f ON f.business_date = d
    WHERE v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at);
CREATE OR REPLACE MACRO raw.oc_order_lines_at(d) AS TABLE
    SELECT v.* EXCLUDE (valid_from, valid_to, row_hash)
    FROM raw.oc_order_lines v JOIN state.storefront_fetches f ON f.business_date = d
    WHERE v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at);
CREATE OR REPLACE MACRO raw.oc_products_at(d) AS TABLE
    SELECT v.* EXCLUDE (valid_from, valid_to, row_hash)
    FROM raw.oc_products v JOIN state.storefront_fetches f ON f.business_date = d
    WHERE v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at);
CREATE OR REPLACE MACRO raw.oc_returns_at(d) AS TABLE
    SELECT v.* EXCLUDE (valid_from, valid_to, row_hash)
    FROM raw.oc_returns v JOIN state.storefront_fetches f ON f.business_date = d
    WHERE v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at);
CREATE OR REPLACE MACRO raw.oc_return_history_at(d) AS TABLE
    SELECT v.* EXCLUDE (valid_from, valid_to, row_hash)
    FROM raw.oc_return_history v JOIN state.storefront_fetches f ON f.business_date = d
    WHERE v.valid_from <= f.fetched_at AND (v.valid_to IS NULL OR v.valid_to > f.fetched_at);
