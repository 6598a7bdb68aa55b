-- Reconciliation outputs (reconciliation.md "What the run writes").
CREATE SCHEMA IF NOT EXISTS recon;

-- Why each RMA line was tied to each WMS return (first matching method wins per RMA line).
CREATE TABLE IF NOT EXISTS recon.rma_matches (
    business_date DATE NOT NULL,
    rma_reference VARCHAR NOT NULL,
    return_reference VARCHAR NOT NULL,
    method VARCHAR NOT NULL,                 -- reference | tracking | order_sku
    rma_order_reference VARCHAR,
    wms_order_reference VARCHAR,
    rma_tracking_id VARCHAR,
    wms_tracking_id VARCHAR
);

-- Which credit note each payment-provider refund was tied to, and how (reference, then order +
-- amount; provider refunds in created order, first hit wins). Unlinked refunds have no row.
CREATE TABLE IF NOT EXISTS recon.payment_matches (
    business_date DATE NOT NULL,
    refund_id VARCHAR NOT NULL,
    credit_note_number VARCHAR NOT NULL,
    method VARCHAR NOT NULL                  -- reference | order_amount
);

-- Units and money per storefront order line as of T: the numbers the order-line rules compare.
CREATE TABLE IF NOT EXISTS recon.order_line_positions (
    business_date DATE NOT NULL,
    order_reference VARCHAR NOT NULL,
    order_line_reference VARCHAR NOT NULL,   -- the order line's order_product_ids
    sku VARCHAR,
    sku_key VARCHAR,
    currency VARCHAR,
    unit_gross DECIMAL(24,8),
    ordered_quantity INTEGER,
    rma_references VARCHAR,
    requested_units INTEGER,
    matched_returns VARCHAR,
    matched_return_count INTEGER,
    completed_return_count INTEGER,
    latest_completed_at TIMESTAMP,
    received_units INTEGER,
    accepted_units INTEGER,
    damaged_units INTEGER,
    refunded_amount DECIMAL(38,10),
    credit_note_count INTEGER,
    credit_notes VARCHAR,
    refunded_units INTEGER,
    has_non_refund_action BOOLEAN,
    has_unknown_action BOOLEAN,              -- a live RMA's action name is not in the map
    unjudged_reason VARCHAR                  -- set when a rejected record names the order: rules skip the line
);

-- Every detection of every run: the history the discrepancy lifecycle is derived from.
CREATE TABLE IF NOT EXISTS recon.discrepancy_detections (
    business_date DATE NOT NULL,
    discrepancy_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    order_reference VARCHAR,
    order_line_reference VARCHAR,
    rma_reference VARCHAR,
    return_reference VARCHAR,
    tracking_id VARCHAR,
    sku VARCHAR,
    refund_reference VARCHAR,
    quantity_gap INTEGER,
    amount_at_risk DECIMAL(18,2),
    currency VARCHAR,
    details JSON,
    explanation VARCHAR                      -- the rule's sentence built from details
);
ALTER TABLE recon.discrepancy_detections ADD COLUMN IF NOT EXISTS explanation VARCHAR;

-- The rate each currency's amounts at risk are converted at in the summary, the chart and the
-- exports of a business date: the latest order rate (oc_order.currency_value: store -> order
-- currency) as of that date. Kept per date (a few rows) since the working tables it comes from
-- keep only the newest dates (retention.working_dates).
CREATE TABLE IF NOT EXISTS recon.currency_rates (
    business_date DATE NOT NULL,
    currency VARCHAR NOT NULL,
    rate DECIMAL(15,8)
);

-- Working tables (retention.working_dates, pipelines/retention.py): which business date's rows
-- each canonical or matching table holds (a row per rebuild, gone when the rows are trimmed: a
-- builder refuses to read a table whose date is not there), and the runs building working rows
-- now (their dates are not trimmed by another run; a run killed midway stops counting when its
-- date runs again, or after a day).
CREATE SCHEMA IF NOT EXISTS state;
CREATE TABLE IF NOT EXISTS state.working_builds (
    table_name VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    built_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS state.working_runs (
    run_id VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    started_at TIMESTAMP NOT NULL
);

-- Business dates the reconciliation has evaluated (a quiet date has no detections).
CREATE TABLE IF NOT EXISTS recon.evaluated_dates (
    business_date DATE NOT NULL,
    evaluated_at TIMESTAMP NOT NULL
);

-- One row per discrepancy ever detected (reconciliation.md).
CREATE TABLE IF NOT EXISTS recon.discrepancies (
    discrepancy_id VARCHAR NOT NULL,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    first_detected_on DATE NOT NULL,
    last_detected_on DATE NOT NULL,
    resolved_on DATE,
    order_reference VARCHAR,
    order_line_reference VARCHAR,
    rma_reference VARCHAR,
    return_reference VARCHAR,
    tracking_id VARCHAR,
    sku VARCHAR,
    refund_reference VARCHAR,
    quantity_gap INTEGER,
    amount_at_risk DECIMAL(18,2),
    currency VARCHAR,
    details JSON,
    review_state VARCHAR DEFAULT 'NEW',      -- what finance decided (from recon.review_events), apart from status
    assignee VARCHAR,
    last_note VARCHAR,
    explanation VARCHAR                      -- one plain sentence a finance reader can act on (from details)
);
-- (a warehouse created before the review columns existed gets them)
ALTER TABLE recon.discrepancies ADD COLUMN IF NOT EXISTS review_state VARCHAR DEFAULT 'NEW';
ALTER TABLE recon.discrepancies ADD COLUMN IF NOT EXISTS assignee VARCHAR;
ALTER TABLE recon.discrepancies ADD COLUMN IF NOT EXISTS last_note VARCHAR;
ALTER TABLE recon.discrepancies ADD COLUMN IF NOT EXISTS explanation VARCHAR;

-- Every review decision, append-only (reconciliation.md "Review: what finance decided"): never
-- deleted by a run, a rerun or retention. The current review columns of recon.discrepancies are
-- derived from it (sql/recon/merge_into_discrepancy_reviews.sql).
CREATE TABLE IF NOT EXISTS recon.review_events (
    event_id BIGINT NOT NULL,                -- increasing: the order the changes were made in
    discrepancy_id VARCHAR NOT NULL,
    "at" TIMESTAMP NOT NULL,                 -- UTC (a keyword: quoted)
    actor VARCHAR NOT NULL,                  -- the OS user, or --actor
    field VARCHAR NOT NULL,                  -- review_state | assignee | note
    old VARCHAR,
    new VARCHAR,
    note VARCHAR,
    source VARCHAR NOT NULL,                 -- 'cli', or the imported file: '<name> sha256:<hex>'
    amount_at_risk DECIMAL(18,2),            -- the discrepancy's amount when the change was made:
    currency VARCHAR,                        -- a decision holds while the amount does not change
    business_date DATE                       -- the register's business date then (its latest evaluated date)
);
ALTER TABLE recon.review_events ADD COLUMN IF NOT EXISTS business_date DATE;

-- Per credit note of date d: the provider refunds linked to it (recon.payment_matches), what the
-- succeeded ones paid, and the evidence for details (ids, statuses, amounts, methods in created order).
CREATE OR REPLACE MACRO recon.payment_links(d) AS TABLE
    SELECT m.credit_note_number,
           count(*) AS linked,
           count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
           count(*) FILTER (WHERE r.status IN ('failed', 'canceled')) AS failed,
           coalesce(sum(r.amount) FILTER (WHERE r.status = 'succeeded'), 0) AS paid,
           string_agg(r.refund_id, ',' ORDER BY r.created, r.refund_id) AS refund_ids,
           string_agg(r.refund_id, ',' ORDER BY r.created, r.refund_id) FILTER (WHERE r.status = 'succeeded')
               AS succeeded_ids,
           string_agg(r.refund_id || ' ' || r.status, ', ' ORDER BY r.created, r.refund_id) AS refund_statuses,
           to_json(list({'id': r.refund_id, 'status': r.status, 'amount': r.amount, 'currency': r.currency,
                         'created': r.created, 'match_method': m.method} ORDER BY r.created, r.refund_id)) AS refunds
    FROM recon.payment_matches m
    JOIN core.provider_refunds r ON r.business_date = d AND r.refund_id = m.refund_id
    WHERE m.business_date = d
    GROUP BY m.credit_note_number;
