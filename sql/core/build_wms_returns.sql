-- core.wms_returns: one row per WMS return existing at T (createdAt <= T), with its state as of T
-- from the timestamps. Of the versions fetched by D (polled or found by a tracking probe) it is
-- the latest one updated by T; when every version was updated after T (a backfill, or a record
-- first fetched later), the earliest one, read as of T (its later timestamps and grades ignored).
INSERT INTO core.wms_returns
WITH versions AS (
    SELECT return_reference, order_reference, tracking_id, state, created_at, arrived_at, completed_at,
           updated_at, business_date AS fetched_on, 'poll' AS fetched_via
    FROM raw.wms_returns WHERE business_date <= $business_date
    UNION ALL
    SELECT return_reference, order_reference, tracking_id, state, created_at, arrived_at, completed_at,
           updated_at, business_date, 'probe'
    FROM raw.wms_probed_returns WHERE business_date <= $business_date
),
latest AS (
    SELECT * FROM versions
    QUALIFY row_number() OVER (PARTITION BY return_reference
                               ORDER BY updated_at <= $as_of DESC,
                                        CASE WHEN updated_at <= $as_of THEN updated_at END DESC,
                                        updated_at, fetched_on DESC, fetched_via) = 1
)
SELECT
    $business_date,
    return_reference,
    order_reference,
    tracking_id,
    CASE WHEN completed_at <= $as_of THEN 'Completed'
         WHEN arrived_at <= $as_of THEN 'ArrivedToWarehouse'
         ELSE 'ReturnCreated' END,
    created_at,
    CASE WHEN arrived_at <= $as_of THEN arrived_at END,
    CASE WHEN completed_at <= $as_of THEN completed_at END,
    updated_at,
    fetched_via,
    state
FROM latest
WHERE created_at <= $as_of;
