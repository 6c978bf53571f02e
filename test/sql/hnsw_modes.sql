-- hnsw_modes: the L1 operator class and the iterative scan modes of
-- crossmodal_hnsw (crossmodal.hnsw_iterative_scan, .hnsw_scan_mem_multiplier).
SET client_min_messages = notice;
CREATE TABLE modes (id int PRIMARY KEY, rare bool, emb embedding(6));
INSERT INTO modes
SELECT i, i % 100 = 0,
       ARRAY[sin(i), cos(1.7 * i), sin(0.3 * i), cos(i) * sin(i), sin(2.9 * i), cos(0.11 * i)]::real[]
FROM generate_series(1, 2000) i;
ANALYZE modes;

-- L1: <+> through the index, exact with a large ef, after inserts too.
CREATE INDEX modes_l1 ON modes USING crossmodal_hnsw (emb embedding_l1_ops);
INSERT INTO modes
SELECT i, false, ARRAY[sin(i), cos(1.7 * i), sin(0.3 * i), cos(i) * sin(i), sin(2.9 * i), cos(0.11 * i)]::real[]
FROM generate_series(2001, 2200) i;
EXPLAIN (COSTS OFF) SELECT id FROM modes ORDER BY emb <+> '[0.1,0.2,0.3,0.4,0.5,0.6]' LIMIT 5;
SET crossmodal.hnsw_ef_search = 1000;
SET enable_seqscan = off;
CREATE TEMP TABLE l1_index AS
SELECT array_agg(id) AS ids FROM (SELECT id FROM modes ORDER BY emb <+> '[0.1,0.2,0.3,0.4,0.5,0.6]' LIMIT 10) s;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT ids = (SELECT array_agg(id) FROM (SELECT id FROM modes ORDER BY emb <+> '[0.1,0.2,0.3,0.4,0.5,0.6]' LIMIT 10) s)
       AS l1_exact FROM l1_index;
RESET enable_indexscan;
RESET crossmodal.hnsw_ef_search;
SELECT amvalidate(oid) FROM pg_opclass WHERE opcname = 'embedding_l1_ops';

-- Iterative scans: 22 rows are rare; a filter keeps them only.
CREATE INDEX modes_l2 ON modes USING crossmodal_hnsw (emb embedding_l2_ops);
SHOW crossmodal.hnsw_iterative_scan;
SHOW crossmodal.hnsw_scan_mem_multiplier;
SET enable_seqscan = off;
SET crossmodal.hnsw_ef_search = 10;
-- relaxed_order (the default): the scan goes on until the LIMIT is met.
SELECT count(*) FROM (SELECT id FROM modes WHERE rare ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 20) s;
-- off: the first ef_search candidates only, whatever the filter leaves of them.
SET crossmodal.hnsw_iterative_scan = off;
SELECT count(*) <= 10 AS at_most_ef FROM (SELECT id FROM modes WHERE rare ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 20) s;
SELECT count(*) FROM (SELECT id FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 100) s;
-- strict_order: the scan goes on, and distances never decrease.
SET crossmodal.hnsw_iterative_scan = strict_order;
SELECT count(*) AS rows, bool_and(d >= prev) AS nondecreasing
FROM (SELECT d, lag(d, 1, 0) OVER (ORDER BY n) AS prev
      FROM (SELECT row_number() OVER () AS n, emb <-> '[0,0,0,0,0,0]' AS d
            FROM (SELECT emb FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 1000) s) t) u;
SELECT count(*) >= 20 AS continues FROM (SELECT id FROM modes WHERE rare ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 20) s;
-- relaxed_order: the same scan's distances go down here and there (across
-- batches), and a scan run to the end returns every row.
SET crossmodal.hnsw_iterative_scan = relaxed_order;
SELECT count(*) AS rows, bool_and(d >= prev) AS nondecreasing
FROM (SELECT d, lag(d, 1, 0) OVER (ORDER BY n) AS prev
      FROM (SELECT row_number() OVER () AS n, emb <-> '[0,0,0,0,0,0]' AS d
            FROM (SELECT emb FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 1000) s) t) u;
SELECT count(DISTINCT id) FROM (SELECT id FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 3000) s;
-- The README's re-sort of relaxed_order rows.
WITH found AS MATERIALIZED (
    SELECT id, emb <-> '[0,0,0,0,0,0]' AS distance FROM modes WHERE rare
    ORDER BY distance LIMIT 5)
SELECT count(*), bool_and(distance >= prev) AS sorted
FROM (SELECT distance, lag(distance, 1, 0) OVER (ORDER BY n) AS prev
      FROM (SELECT row_number() OVER () AS n, distance
            FROM (SELECT * FROM found ORDER BY distance + 0) r) q) u;
-- The memory bound stops a long iterative scan (work_mem 64kB, multiplier 1)
-- and lets it go on when raised.
SET work_mem = '64kB';
SELECT count(*) < 2200 AS stopped FROM (SELECT id FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 3000) s;
SET crossmodal.hnsw_scan_mem_multiplier = 1000;
SELECT count(*) FROM (SELECT id FROM modes ORDER BY emb <-> '[0,0,0,0,0,0]' LIMIT 3000) s;
RESET work_mem;
RESET crossmodal.hnsw_scan_mem_multiplier;
RESET crossmodal.hnsw_iterative_scan;
RESET crossmodal.hnsw_ef_search;
RESET enable_seqscan;

-- Settings out of range.
SET crossmodal.hnsw_iterative_scan = on;
SET crossmodal.hnsw_scan_mem_multiplier = 0;
SET crossmodal.hnsw_scan_mem_multiplier = 1001;

DROP TABLE modes;
