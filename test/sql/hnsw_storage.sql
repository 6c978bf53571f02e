-- crossmodal_hnsw storage forms (WITH (storage = ...)): the option, the dimension limits and
-- errors, and exact answers (the compact forms re-rank from the table) for every form and distance.
-- The exactness checks use an ef_search above the index's element count, so a batch holds every
-- element whatever the codes estimate (rabitq's estimates on 24 dimensions are very rough).
SET client_min_messages = notice;
SELECT setseed(0.17);
CREATE TABLE st (id int PRIMARY KEY, grp int, emb embedding(24));
INSERT INTO st
	SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 700) i;
CREATE TABLE stq (qid int, q embedding(24));
INSERT INTO stq
	SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 4) i;

-- An operator class whose distance (L1, through an SQL function) the index computes through its
-- support function, not a kernel of its own.
CREATE FUNCTION st_l1(embedding, embedding) RETURNS float8 LANGUAGE sql IMMUTABLE STRICT
	AS 'SELECT l1_distance($1, $2)';
CREATE OPERATOR <%> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = st_l1);
CREATE OPERATOR CLASS st_l1_ops FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <%> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 st_l1(embedding, embedding);

-- The top k of st by `op` through the index or exactly (sequential scan), optionally filtered.
CREATE FUNCTION st_knn(op text, qv embedding, k int, use_index bool, filter text DEFAULT 'true')
RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE r int[];
BEGIN
	PERFORM set_config('enable_seqscan', CASE WHEN use_index THEN 'off' ELSE 'on' END, true);
	PERFORM set_config('enable_indexscan', CASE WHEN use_index THEN 'on' ELSE 'off' END, true);
	PERFORM set_config('enable_bitmapscan', 'off', true);
	EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM st WHERE %s ORDER BY emb %s $1 LIMIT %s) s',
				   filter, op, k) INTO r USING qv;
	RETURN r;
END $$;

-- Whether every query's top 10, top 40 and filtered top 10 through the index equal the exact ones.
CREATE FUNCTION st_exact(op text) RETURNS bool LANGUAGE sql AS $$
	SELECT bool_and(st_knn(op, q, 10, true) = st_knn(op, q, 10, false)
				AND st_knn(op, q, 40, true) = st_knn(op, q, 40, false)
				AND st_knn(op, q, 10, true, 'grp = 3') = st_knn(op, q, 10, false, 'grp = 3'))
	FROM stq
$$;

-- Options: the four forms, in any case; anything else is an error.
CREATE INDEX st_default ON st USING crossmodal_hnsw (emb embedding_l2_ops);
CREATE INDEX st_half ON st USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = 'HALF');
SELECT relname, reloptions FROM pg_class WHERE relname IN ('st_default', 'st_half') ORDER BY relname;
SELECT pg_relation_size('st_half') < pg_relation_size('st_default') AS half_is_smaller;
DROP INDEX st_default, st_half;
CREATE INDEX ON st USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = float8);
CREATE INDEX ON st USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = '');
CREATE INDEX ON st USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = bit);

-- Every form and distance, at an ef large enough for an exhaustive search: exactly the answers
-- of a sequential scan, after the build, and after inserts and deletes (the deleted rows are
-- still in the index and must not come back).  One statement per index, so that no index holds
-- the rows earlier rounds deleted.
SET crossmodal.hnsw_ef_search = 1000;
CREATE FUNCTION st_check(form text, op text, opclass text, OUT built bool, OUT changed bool)
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE INDEX st_idx ON st USING crossmodal_hnsw (emb %s) WITH (storage = %s)',
				   opclass, form);
	built := st_exact(op);
	INSERT INTO st SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
		FROM generate_series(701, 900) i;
	DELETE FROM st WHERE id % 3 = 0;
	changed := st_exact(op);
	DROP INDEX st_idx;
	DELETE FROM st WHERE id > 700;
	INSERT INTO st SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
		FROM generate_series(1, 700) i WHERE i % 3 = 0;
END $$;
SELECT * FROM st_check('float4', '<=>', 'embedding_cosine_ops');
SELECT * FROM st_check('float4', '<->', 'embedding_l2_ops');
SELECT * FROM st_check('float4', '<#>', 'embedding_ip_ops');
SELECT * FROM st_check('float4', '<+>', 'embedding_l1_ops');
SELECT * FROM st_check('float4', '<%>', 'st_l1_ops');
SELECT * FROM st_check('half', '<=>', 'embedding_cosine_ops');
SELECT * FROM st_check('half', '<->', 'embedding_l2_ops');
SELECT * FROM st_check('half', '<#>', 'embedding_ip_ops');
SELECT * FROM st_check('half', '<+>', 'embedding_l1_ops');
SELECT * FROM st_check('half', '<%>', 'st_l1_ops');
SELECT * FROM st_check('int8', '<=>', 'embedding_cosine_ops');
SELECT * FROM st_check('int8', '<->', 'embedding_l2_ops');
SELECT * FROM st_check('int8', '<#>', 'embedding_ip_ops');
SELECT * FROM st_check('int8', '<+>', 'embedding_l1_ops');
SELECT * FROM st_check('int8', '<%>', 'st_l1_ops');
SELECT * FROM st_check('rabitq', '<=>', 'embedding_cosine_ops');
SELECT * FROM st_check('rabitq', '<->', 'embedding_l2_ops');
SELECT * FROM st_check('rabitq', '<#>', 'embedding_ip_ops');

-- After VACUUM (outside a transaction block).
CREATE INDEX st_i8 ON st USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = int8);
CREATE INDEX st_rq ON st USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq);
DELETE FROM st WHERE id % 5 = 0;
VACUUM st;
SELECT st_exact('<->') AS int8_after_vacuum, st_exact('<=>') AS rabitq_after_vacuum;
SELECT count(*) = (SELECT count(*) FROM st) AS vacuumed FROM crossmodal_hnsw_heap_tids('st_i8');
INSERT INTO st SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 24) WHERE i > 0)::embedding
	FROM generate_series(1, 700) i WHERE i % 5 = 0;
DROP INDEX st_i8, st_rq;

-- A scan run to the end returns every row once, in exact order within each batch; the
-- distances the index returns are the exact ones.
CREATE INDEX st_h ON st USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = half);
SET crossmodal.hnsw_ef_search = 40;
SET enable_seqscan = off;
SELECT count(*) AS returned, count(DISTINCT id) AS distinct_rows
FROM (SELECT id FROM st ORDER BY emb <=> (SELECT q FROM stq WHERE qid = 1) LIMIT 5000) s;
SELECT array_agg(id) = st_knn('<=>', (SELECT q FROM stq WHERE qid = 1), 5, false) AS top5_exact
FROM (SELECT id FROM st ORDER BY emb <=> (SELECT q FROM stq WHERE qid = 1) LIMIT 5) s;
RESET enable_seqscan;
DROP INDEX st_h;

-- An expression index re-ranks with the expression computed on the table's rows.
CREATE INDEX st_expr ON st USING crossmodal_hnsw ((l2_normalize(emb)) embedding_l2_ops) WITH (storage = int8);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM st ORDER BY l2_normalize(emb) <-> '[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]' LIMIT 5;
SELECT array_agg(id) FROM (SELECT id FROM st ORDER BY l2_normalize(emb) <-> (SELECT q FROM stq WHERE qid = 2) LIMIT 8) s;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT array_agg(id) FROM (SELECT id FROM st ORDER BY l2_normalize(emb) <-> (SELECT q FROM stq WHERE qid = 2) LIMIT 8) s;
RESET enable_indexscan;
DROP INDEX st_expr;
RESET crossmodal.hnsw_ef_search;

-- The storage option of an existing index takes effect when it is rebuilt.
CREATE INDEX st_alter ON st USING crossmodal_hnsw (emb embedding_l2_ops);
SELECT pg_relation_size('st_alter') AS float4_size \gset
ALTER INDEX st_alter SET (storage = int8);
SELECT pg_relation_size('st_alter') = :float4_size AS unchanged_until_reindex;
REINDEX INDEX st_alter;
SELECT pg_relation_size('st_alter') < :float4_size AS smaller_after_reindex;
DROP INDEX st_alter;

-- Dimension limits: the error names the limit and the storage form that lifts it.
CREATE TABLE st_wide (id int, emb embedding);
CREATE INDEX ON st_wide USING crossmodal_hnsw ((emb::embedding(2000)) embedding_l2_ops);
CREATE INDEX ON st_wide USING crossmodal_hnsw ((emb::embedding(4000)) embedding_l2_ops) WITH (storage = half);
CREATE INDEX ON st_wide USING crossmodal_hnsw ((emb::embedding(8000)) embedding_l2_ops) WITH (storage = int8);
CREATE INDEX ON st_wide USING crossmodal_hnsw ((emb::embedding(1900)) embedding_l2_ops) WITH (m = 100, ef_construction = 200);
-- an unconstrained column meets the limit at its first row
CREATE INDEX st_wide_half ON st_wide USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = half);
INSERT INTO st_wide VALUES (1, array_fill(0.5, ARRAY[4000])::embedding);
DROP INDEX st_wide_half;
-- 16,000 dimensions (the type's limit) with rabitq, at the largest m too: exact at a large ef
INSERT INTO st_wide
	SELECT i, (SELECT array_agg(sin(i * 7 + j * 0.37))::real[] FROM generate_series(1, 16000) j WHERE i > 0)::embedding
	FROM generate_series(1, 30) i;
CREATE INDEX st_wide_rq ON st_wide USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq, m = 100, ef_construction = 200);
INSERT INTO st_wide
	SELECT i, (SELECT array_agg(sin(i * 7 + j * 0.37))::real[] FROM generate_series(1, 16000) j WHERE i > 0)::embedding
	FROM generate_series(31, 40) i;
SET crossmodal.hnsw_ef_search = 100;
SET enable_seqscan = off;
SELECT array_agg(id) FROM (SELECT id FROM st_wide ORDER BY emb <=> (SELECT emb FROM st_wide WHERE id = 33) LIMIT 6) s;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT array_agg(id) FROM (SELECT id FROM st_wide ORDER BY emb <=> (SELECT emb FROM st_wide WHERE id = 33) LIMIT 6) s;
RESET enable_indexscan;
RESET crossmodal.hnsw_ef_search;

-- Values half precision cannot hold, and rabitq with distances it cannot estimate.
CREATE TABLE st_big (emb embedding(3));
INSERT INTO st_big VALUES ('[1,2,3]'), ('[100000,0,1]');
CREATE INDEX ON st_big USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = half);
CREATE INDEX ON st_big USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = int8);
CREATE INDEX ON st_big USING crossmodal_hnsw (emb embedding_l1_ops) WITH (storage = rabitq);
CREATE INDEX ON st_big USING crossmodal_hnsw (emb st_l1_ops) WITH (storage = rabitq);

-- A row updated in place (HOT: another column changed, the vector did not)
-- is returned by every storage form.  Its version is a heap-only tuple past
-- the TID the index holds (the chain's root); the compact forms, which
-- re-rank from the table, used to return the version's TID, which the
-- executor cannot fetch by, and the row was lost.
CREATE FUNCTION st_hot_count(storage text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	hot bigint;
BEGIN
	CREATE TABLE st_hot (id int PRIMARY KEY, note text, emb embedding(4)) WITH (fillfactor = 50);
	INSERT INTO st_hot SELECT i, 'a', ARRAY[i, i % 3, 1, -i]::embedding FROM generate_series(1, 20) i;
	EXECUTE format('CREATE INDEX st_hot_i ON st_hot USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = %s)', storage);
	UPDATE st_hot SET note = 'b' WHERE id % 4 = 0;
	-- the updated rows' versions are heap-only tuples: not at the TID the index holds
	SELECT count(*) INTO hot FROM st_hot WHERE id % 4 = 0 AND ctid <> ALL (SELECT crossmodal_hnsw_heap_tids('st_hot_i'));
	SET LOCAL enable_seqscan = off;
	SELECT count(*) INTO n FROM (SELECT id FROM st_hot ORDER BY emb <-> '[1,1,1,1]' LIMIT 100) s;
	DROP TABLE st_hot;
	RETURN format('%s rows of 20 (%s of the 5 updated rows are heap-only tuples)', n, hot);
END $$;
SELECT s, st_hot_count(s) FROM unnest(ARRAY['float4', 'half', 'int8', 'rabitq']) s;
DROP FUNCTION st_hot_count;

DROP TABLE st, stq, st_wide, st_big;
DROP FUNCTION st_check, st_exact, st_knn;
DROP OPERATOR CLASS st_l1_ops USING crossmodal_hnsw;
DROP OPERATOR <%> (embedding, embedding);
DROP FUNCTION st_l1;
