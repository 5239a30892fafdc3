-- The `sales` table that examples/etl/revenue.toml runs against: 20000
-- deterministic rows with NULLs in every column but `day`, refunds (negative
-- cents) and a mixed-case column name ("City") that must be quoted.
--
--   psql -v ON_ERROR_STOP=1 -f examples/etl/sales.sql
--   flow-etl run examples/etl/revenue.toml
--
-- Creates (or replaces) `sales` in the first schema of the search_path.

DROP TABLE IF EXISTS sales;
CREATE TABLE sales (
  region integer,            -- NULL: unknown region (a group of its own)
  day    date NOT NULL,
  cents  bigint,             -- NULL: not priced yet; negative: a refund
  price  numeric(12,2),      -- NULL: no list price
  ratio  double precision,   -- discount ratio in [0, 1); NULL: none
  "City" text                -- mixed case, so always written "City"
);

INSERT INTO sales (region, day, cents, price, ratio, "City")
SELECT CASE WHEN i % 17 = 0 THEN NULL ELSE i % 5 + 1 END,
       date '2024-01-01' + i % 31,
       CASE WHEN i % 23 = 0 THEN NULL
            WHEN i % 41 = 0 THEN -(i * 37 % 5000)
            ELSE i * 7919 % 100000 END,
       CASE WHEN i % 29 = 0 THEN NULL
            ELSE round((i * 104729 % 500000) / 100.0, 2) END,
       CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 31 % 100) / 100.0 END,
       (ARRAY['Lyon', 'lyon', 'Zürich', 'São Paulo', 'Oslo', NULL])[i % 6 + 1]
FROM generate_series(1, 20000) AS i;

ANALYZE sales;
