-- A crossmodal_hnsw scan that runs to the end returns every indexed row, even
-- the elements no link leads to (HNSW's neighbour selection leaves some; with
-- m = 4 and ef_construction = 8 on these 20,000 uniform 16-dimensional vectors,
-- following links alone reaches about 19,300 of them): once the search has
-- visited all it can reach, the scan sweeps the index pages for the rest.
SELECT setseed(0.25);
CREATE TABLE sweep_items (id int PRIMARY KEY, emb embedding(16));
INSERT INTO sweep_items
SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 16) WHERE i > 0)::embedding
FROM generate_series(1, 20000) i;
CREATE INDEX sweep_items_emb ON sweep_items USING crossmodal_hnsw (emb embedding_l2_ops)
	WITH (m = 4, ef_construction = 8);
SET enable_seqscan = off;
SET crossmodal.hnsw_max_scan_tuples = 1000000;

SELECT count(*) AS indexed FROM crossmodal_hnsw_heap_tids('sweep_items_emb');
-- every row, each once
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM sweep_items ORDER BY emb <-> (SELECT emb FROM sweep_items WHERE id = 1)
	  LIMIT 1000000) s;
-- a filter that keeps 1 row in 1,000: all 20 come back
SELECT count(*) AS matching
FROM (SELECT id FROM sweep_items WHERE id % 1000 = 0
	  ORDER BY emb <-> (SELECT emb FROM sweep_items WHERE id = 1) LIMIT 30) s;
-- the same after deleting 9 rows in 10 and VACUUM
DELETE FROM sweep_items WHERE id % 10 <> 0;
VACUUM sweep_items;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM sweep_items ORDER BY emb <-> (SELECT emb FROM sweep_items WHERE id = 10)
	  LIMIT 1000000) s;
-- an index scan still plans for a top-k
EXPLAIN (COSTS OFF)
SELECT id FROM sweep_items ORDER BY emb <-> '[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]' LIMIT 5;
RESET crossmodal.hnsw_max_scan_tuples;
RESET enable_seqscan;
DROP TABLE sweep_items;
