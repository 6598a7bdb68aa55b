-- One storefront table's versions after a full read (change capture; the layout is in
-- sql/schema/create_raw_storefront_tables.sql). pipelines/resources/storefront_versions.py runs it
-- once per table, {table} and {key} filled in from its fixed list, with the rows that load in
-- temp view _sf_read (the table's columns) and this fetch's time $fetched_at, in the storefront's
-- transaction, after state.storefront_fetches holds this fetch.

CREATE OR REPLACE TEMP TABLE _sf_hashed AS
SELECT r.*, md5(to_json(r)) AS row_hash FROM _sf_read r;

-- the current version of a row changed or gone is closed
UPDATE raw.{table} SET valid_to = $fetched_at
WHERE valid_to IS NULL
  AND NOT EXISTS (SELECT 1 FROM _sf_hashed h
                  WHERE h.{key} = raw.{table}.{key} AND h.row_hash = raw.{table}.row_hash);

-- a row with no current version (new, changed, or back after being gone) gets one
INSERT INTO raw.{table} BY NAME
SELECT h.*, $fetched_at AS valid_from, NULL AS valid_to
FROM _sf_hashed h
WHERE NOT EXISTS (SELECT 1 FROM raw.{table} c WHERE c.{key} = h.{key} AND c.valid_to IS NULL);

-- a closed version that no recorded fetch reads any more (the date that read it was run again,
-- or fell out of the retention) goes
DELETE FROM raw.{table} v
WHERE v.valid_to IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM state.storefront_fetches f
                  WHERE f.fetched_at >= v.valid_from AND f.fetched_at < v.valid_to);

DROP TABLE _sf_hashed;
