-- Tables every layer shares.
CREATE SCHEMA IF NOT EXISTS recon;

-- Records that failed validation, with the reason; replaced per (source, business_date).
CREATE TABLE IF NOT EXISTS recon.rejects (
    source VARCHAR NOT NULL,                 -- wms_returns, storefront, refund_ledger, ...
    record_key VARCHAR,
    reason VARCHAR NOT NULL,
    payload VARCHAR,
    business_date DATE NOT NULL
);
