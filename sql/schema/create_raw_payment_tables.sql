-- Raw payment-provider refunds (sources.md section 4), polled incrementally over the
-- Stripe-compatible API. A row is written only when a refund is new or differs from its latest
-- version stored by earlier business dates (a quiet day writes nothing): business_date is the
-- date whose run read this version. A date reads, per refund, its latest version stored by that
-- date (raw.payment_refunds_at below). Amounts are exact: amount_minor as sent, amount =
-- amount_minor / 10^exponent of the currency (ISO 4217). Of the metadata only order_id and
-- credit_note_number are kept; other keys may hold customer data and are never read.
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS state;

CREATE TABLE IF NOT EXISTS raw.payment_refunds (
    business_date DATE NOT NULL,
    refund_id VARCHAR NOT NULL,              -- re_...
    amount_minor BIGINT NOT NULL,            -- as sent: minor units of the currency
    amount DECIMAL(38,10) NOT NULL,          -- exact, in the currency
    currency VARCHAR NOT NULL,               -- upper-cased ISO code
    created TIMESTAMP NOT NULL,              -- UTC
    status VARCHAR NOT NULL,                 -- pending | requires_action | succeeded | failed | canceled
    payment_intent VARCHAR,
    charge VARCHAR,
    reason VARCHAR,
    failure_reason VARCHAR,
    order_id VARCHAR,                        -- metadata.order_id
    credit_note_number VARCHAR,              -- metadata.credit_note_number
    row_hash VARCHAR NOT NULL,               -- md5 of the columns above: a new version only when it changes
    fetched_at TIMESTAMP NOT NULL
);

-- One row per business date the provider was read for: its window and counts. The payment rules
-- judge only dates that have one (a disabled source finds nothing rather than every note unpaid).
CREATE TABLE IF NOT EXISTS state.payment_polls (
    business_date DATE NOT NULL,
    created_gte TIMESTAMP,                   -- the window read: created >= this (null: from the start)
    created_lte TIMESTAMP NOT NULL,          -- ... and <= T
    refunds_read INTEGER NOT NULL,
    versions_written INTEGER NOT NULL,
    rejects INTEGER NOT NULL,
    pages INTEGER NOT NULL,
    fetched_at TIMESTAMP NOT NULL
);

CREATE OR REPLACE MACRO raw.payment_refunds_at(d) AS TABLE
    SELECT * EXCLUDE (rn) FROM (
        SELECT *, row_number() OVER (PARTITION BY refund_id ORDER BY business_date DESC, fetched_at DESC) AS rn
        FROM raw.payment_refunds WHERE business_date <= d)
    WHERE rn = 1;
