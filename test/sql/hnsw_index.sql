-- crossmodal_hnsw: results, plans, options, errors.
SET client_min_messages = notice;
SELECT setseed(0.42);
CREATE TABLE items (id int PRIMARY KEY, category text, emb embedding(8));
INSERT INTO items
	SELECT i, CASE WHEN i % 50 = 0 THEN 'rare' ELSE 'common' END,
		(SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 8) WHERE i > 0)::embedding
	FROM generate_series(1, 1000) i;
CREATE TABLE queries (qid int, q embedding(8));
INSERT INTO queries
	SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 8) WHERE i > 0)::embedding
	FROM generate_series(1, 5) i;

-- Top-10 through the index, and exactly (sequential scan), for each query.
CREATE FUNCTION knn(op text, qv embedding, k int, use_index bool) RETURNS int[]
LANGUAGE plpgsql AS $$
DECLARE r int[];
BEGIN
	PERFORM set_config('enable_seqscan', CASE WHEN use_index THEN 'off' ELSE 'on' END, true);
	PERFORM set_config('enable_indexscan', CASE WHEN use_index THEN 'on' ELSE 'off' END, true);
	EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM items ORDER BY emb %s $1 LIMIT %s) s', op, k)
		INTO r USING qv;
	RETURN r;
END $$;

CREATE INDEX items_cos ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
CREATE INDEX items_l2 ON items USING crossmodal_hnsw (emb embedding_l2_ops);
CREATE INDEX items_ip ON items USING crossmodal_hnsw (emb embedding_ip_ops);

-- With a large ef the search is exhaustive: the index returns the exact answer.
SET crossmodal.hnsw_ef_search = 1000;
SELECT qid, op, knn(op, q, 10, true) = knn(op, q, 10, false) AS exact, knn(op, q, 5, true) AS top5
FROM queries, unnest(ARRAY['<=>', '<->', '<#>']) op ORDER BY qid, op;
RESET crossmodal.hnsw_ef_search;

-- A parallel build gives an index with the same exact answers.
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
CREATE INDEX items_cos_par ON items USING crossmodal_hnsw (emb embedding_cosine_ops);
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;
SELECT count(*) FROM crossmodal_hnsw_heap_tids('items_cos_par');
DROP INDEX items_cos;
SET crossmodal.hnsw_ef_search = 1000;
SELECT qid, knn('<=>', q, 10, true) = knn('<=>', q, 10, false) AS exact FROM queries ORDER BY qid;
RESET crossmodal.hnsw_ef_search;
ALTER INDEX items_cos_par RENAME TO items_cos;

-- A parallel build of a table that outgrew its statistics: the rows beyond
-- the shared graph's room are added afterwards (NOTICE), none is lost.
CREATE TABLE grown (id int, emb embedding(8));
INSERT INTO grown SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 8) WHERE i > 0)::embedding
	FROM generate_series(1, 1000) i;
ANALYZE grown;
INSERT INTO grown SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 8) WHERE i > 0)::embedding
	FROM generate_series(1001, 4000) i;
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
CREATE INDEX grown_idx ON grown USING crossmodal_hnsw (emb embedding_l2_ops);
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;
SELECT count(*) FROM crossmodal_hnsw_heap_tids('grown_idx');
SET enable_seqscan = off;
SET crossmodal.hnsw_max_scan_tuples = 100000;
SELECT count(DISTINCT id) > 3990 AS nearly_all FROM (SELECT id FROM grown ORDER BY emb <-> (SELECT emb FROM grown WHERE id = 1) LIMIT 5000) s;
RESET crossmodal.hnsw_max_scan_tuples;
RESET enable_seqscan;
DROP TABLE grown;

-- The planner uses the index for a top-k and not for a LIMIT near the table size.
ANALYZE items;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '[1,2,3,4,5,6,7,8]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <-> '[1,2,3,4,5,6,7,8]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <#> '[1,2,3,4,5,6,7,8]' LIMIT 10;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <=> '[1,2,3,4,5,6,7,8]' LIMIT 900;
-- Not usable without ORDER BY distance.
EXPLAIN (COSTS OFF) SELECT id FROM items WHERE emb = '[1,2,3,4,5,6,7,8]';

-- Filtered queries keep searching until LIMIT rows pass the filter (20 rare rows exist).
SET crossmodal.hnsw_ef_search = 10;
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM items WHERE category = 'rare'
	ORDER BY emb <=> '[1,2,3,4,5,6,7,8]' LIMIT 10) s;
SELECT count(*) FROM (SELECT id FROM items WHERE category = 'rare'
	ORDER BY emb <-> '[1,2,3,4,5,6,7,8]' LIMIT 50) s;
-- A LIMIT larger than ef_search returns every row.
SELECT count(DISTINCT id) FROM (SELECT id FROM items ORDER BY emb <=> '[1,2,3,4,5,6,7,8]' LIMIT 2000) s;
-- ... unless the scan bound stops it first.
SET crossmodal.hnsw_max_scan_tuples = 100;
SELECT count(*) < 1000 AS bounded FROM (SELECT id FROM items ORDER BY emb <=> '[1,2,3,4,5,6,7,8]' LIMIT 2000) s;
RESET crossmodal.hnsw_max_scan_tuples;
RESET crossmodal.hnsw_ef_search;
RESET enable_seqscan;

-- Inserts after the build, deletes and VACUUM: still exact with a large ef.
INSERT INTO items
	SELECT i, 'late', (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 8) WHERE i > 0)::embedding
	FROM generate_series(1001, 1500) i;
DELETE FROM items WHERE id % 3 = 0;
VACUUM items;
SET crossmodal.hnsw_ef_search = 1000;
SELECT qid, op, knn(op, q, 10, true) = knn(op, q, 10, false) AS exact
FROM queries, unnest(ARRAY['<=>', '<->', '<#>']) op ORDER BY qid, op;
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM items ORDER BY emb <-> '[0,0,0,0,0,0,0,0]' LIMIT 5000) s;
RESET enable_seqscan;
RESET crossmodal.hnsw_ef_search;

-- NULLs are not indexed; neither are zero vectors under cosine.
CREATE TABLE nullable (id int, emb embedding);
INSERT INTO nullable VALUES (1, '[1,0,0]'), (2, NULL), (3, '[0,0,0]'), (4, '[0,1,0]');
CREATE INDEX nullable_cos ON nullable USING crossmodal_hnsw (emb embedding_cosine_ops);
CREATE INDEX nullable_l2 ON nullable USING crossmodal_hnsw (emb embedding_l2_ops);
INSERT INTO nullable VALUES (5, NULL), (6, '[0,0,0]'), (7, '[0,0,1]');
SET enable_seqscan = off;
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM nullable ORDER BY emb <=> '[1,1,0]' LIMIT 10) s;
SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM nullable ORDER BY emb <-> '[1,1,0]' LIMIT 10) s;
RESET enable_seqscan;

-- Dimensions: an unconstrained column takes the index's from the first row.
INSERT INTO nullable VALUES (8, '[1,2,3,4]');
SET enable_seqscan = off;
SELECT id FROM nullable ORDER BY emb <-> '[1,2]' LIMIT 1;
RESET enable_seqscan;
-- An index built on an empty table fixes its dimensions at the first insert.
CREATE TABLE later (emb embedding);
CREATE INDEX ON later USING crossmodal_hnsw (emb embedding_l2_ops);
INSERT INTO later VALUES ('[1,2]'), ('[3,4]');
INSERT INTO later VALUES ('[1,2,3]');
SET enable_seqscan = off;
SELECT emb FROM later ORDER BY emb <-> '[3,3]' LIMIT 1;
RESET enable_seqscan;

-- Too many dimensions for a page.
CREATE TABLE wide (emb embedding(2100));
CREATE INDEX ON wide USING crossmodal_hnsw (emb embedding_l2_ops);
CREATE INDEX ON wide USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 4);

-- Options and their ranges.
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 1);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 101);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (ef_construction = 3);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (ef_construction = 1001);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 40, ef_construction = 64);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (foo = 1);
CREATE INDEX items_small ON items USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 4, ef_construction = 8);
SELECT reloptions FROM pg_class WHERE relname = 'items_small';
ALTER INDEX items_small SET (m = 200);
SET crossmodal.hnsw_ef_search = 0;
SET crossmodal.hnsw_ef_search = 1001;
SET crossmodal.hnsw_max_scan_tuples = 0;
SHOW crossmodal.hnsw_ef_search;
SHOW crossmodal.hnsw_max_scan_tuples;
CREATE INDEX ON items USING crossmodal_hnsw (category);
CREATE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops, id);
CREATE UNIQUE INDEX ON items USING crossmodal_hnsw (emb embedding_l2_ops);

-- A graph larger than maintenance_work_mem: NOTICE, then the build goes on, on disk.
CREATE TABLE big (id int, emb embedding(64));
INSERT INTO big SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 64) WHERE i > 0)::embedding
	FROM generate_series(1, 3000) i;
SET maintenance_work_mem = '1MB';
CREATE INDEX big_idx ON big USING crossmodal_hnsw (emb embedding_l2_ops) WITH (m = 8, ef_construction = 32);
RESET maintenance_work_mem;
SET crossmodal.hnsw_ef_search = 400;
SET enable_seqscan = off;
-- (a few elements may end up with no incoming link at m = 8 on uniform noise)
SELECT count(*) > 2900 AS nearly_all FROM (SELECT id FROM big ORDER BY emb <-> (SELECT emb FROM big WHERE id = 77) LIMIT 3000) s;
SELECT id FROM big ORDER BY emb <-> (SELECT emb FROM big WHERE id = 77) LIMIT 1;
RESET enable_seqscan;
RESET crossmodal.hnsw_ef_search;

-- Unlogged tables get an init fork.
CREATE UNLOGGED TABLE scratch (emb embedding(2));
CREATE INDEX ON scratch USING crossmodal_hnsw (emb embedding_l2_ops);
INSERT INTO scratch VALUES ('[1,1]');
SET enable_seqscan = off;
SELECT emb FROM scratch ORDER BY emb <-> '[0,0]' LIMIT 1;
RESET enable_seqscan;

-- CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY.
CREATE TABLE cic (id int, emb embedding(4));
INSERT INTO cic SELECT i, ('[' || sin(i) || ',' || cos(i) || ',' || sin(2 * i) || ',' || cos(3 * i) || ']')::embedding
	FROM generate_series(1, 500) i;
CREATE INDEX CONCURRENTLY cic_idx ON cic USING crossmodal_hnsw (emb embedding_l2_ops);
INSERT INTO cic SELECT i, ('[' || sin(i) || ',' || cos(i) || ',' || sin(2 * i) || ',' || cos(3 * i) || ']')::embedding
	FROM generate_series(501, 600) i;
REINDEX INDEX CONCURRENTLY cic_idx;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'cic_idx'::regclass;
SELECT count(*) FROM crossmodal_hnsw_heap_tids('cic_idx');
SET enable_seqscan = off;
SET crossmodal.hnsw_ef_search = 600;
SELECT array_agg(id) FROM (SELECT id FROM cic ORDER BY emb <-> '[0,1,0,1]' LIMIT 5) s;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT array_agg(id) FROM (SELECT id FROM cic ORDER BY emb <-> '[0,1,0,1]' LIMIT 5) s;
RESET enable_indexscan;
RESET crossmodal.hnsw_ef_search;
SELECT crossmodal_hnsw_heap_tids('cic');
DROP TABLE cic;

-- Build phases shown in pg_stat_progress_create_index.
SELECT n, pg_indexam_progress_phasename(a.oid, n) FROM pg_am a, generate_series(1, 4) n
WHERE a.amname = 'crossmodal_hnsw' ORDER BY n;

-- Operator classes pass amvalidate; a broken one does not.
SELECT opcname, amvalidate(c.oid) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
WHERE a.amname = 'crossmodal_hnsw' ORDER BY opcname;
CREATE FUNCTION bad_distance(embedding, embedding) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE OPERATOR CLASS bad_ops FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <+> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 bad_distance(embedding, embedding),
	FUNCTION 2 l2_distance(embedding, embedding);
SELECT amvalidate(oid) FROM pg_opclass WHERE opcname = 'bad_ops';
CREATE OPERATOR CLASS bad_ops2 FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 = (embedding, embedding);
SELECT amvalidate(oid) FROM pg_opclass WHERE opcname = 'bad_ops2';
DROP OPERATOR CLASS bad_ops USING crossmodal_hnsw;
DROP OPERATOR CLASS bad_ops2 USING crossmodal_hnsw;

DROP TABLE items, queries, nullable, later, wide, big, scratch;
DROP FUNCTION knn, bad_distance;
