-- crossmodal_hnsw_check: indexes in good order give no rows (every operator
-- class, expression and partial indexes, empty, after deletes and VACUUM, a
-- parallel build, with and without heapallindexed); errors and permissions.
-- The kinds of damage it finds are tested in test/t/090_hnsw_check.pl.
SET client_min_messages = notice;
SELECT setseed(0.7);
CREATE TABLE chk (id int PRIMARY KEY, tag int, emb embedding(16), doc text);
INSERT INTO chk
	SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 16) WHERE i > 0)::embedding,
		'doc ' || i
	FROM generate_series(1, 2000) i;
-- rows the index leaves out: NULLs, and for cosine the zero vector
INSERT INTO chk VALUES (3001, 0, NULL, 'null'), (3002, 0, array_fill(0, ARRAY[16])::embedding, 'zero');

CREATE INDEX chk_cos ON chk USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (m = 6);
CREATE INDEX chk_l2 ON chk USING crossmodal_hnsw (emb embedding_l2_ops);
CREATE INDEX chk_ip ON chk USING crossmodal_hnsw (emb embedding_ip_ops) WITH (m = 4, ef_construction = 8);
CREATE INDEX chk_l1 ON chk USING crossmodal_hnsw (emb embedding_l1_ops);
CREATE INDEX chk_expr ON chk USING crossmodal_hnsw ((emb * emb) embedding_l2_ops);
CREATE INDEX chk_part ON chk USING crossmodal_hnsw (emb embedding_cosine_ops) WHERE tag = 3;
-- every storage form
CREATE INDEX chk_half ON chk USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = half);
CREATE INDEX chk_int8 ON chk USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = int8);
CREATE INDEX chk_int8_ip ON chk USING crossmodal_hnsw (emb embedding_ip_ops) WITH (storage = int8);
CREATE INDEX chk_rabitq ON chk USING crossmodal_hnsw (emb embedding_cosine_ops) WITH (storage = rabitq);
CREATE INDEX chk_rabitq_l2 ON chk USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = rabitq, m = 4);
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
ANALYZE chk;	-- the parallel build sizes its shared graph from the row estimate
CREATE INDEX chk_par ON chk USING crossmodal_hnsw (emb embedding_l2_ops);
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;
CREATE TABLE chk_empty (emb embedding(3));
CREATE INDEX chk_empty_idx ON chk_empty USING crossmodal_hnsw (emb embedding_l2_ops);
-- built empty, then filled: rabitq without a centroid
CREATE INDEX chk_empty_rabitq ON chk_empty USING crossmodal_hnsw (emb embedding_l2_ops) WITH (storage = rabitq);
INSERT INTO chk_empty SELECT ARRAY[i, i % 7, -i]::embedding FROM generate_series(1, 300) i;

SELECT c.relname, k.*
FROM pg_class c, LATERAL crossmodal_hnsw_check(c.oid::regclass, true) k
WHERE c.relname LIKE 'chk%' AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'crossmodal_hnsw');

-- After deletes, updates and VACUUM (freed slots, repaired links, reused slots).
DELETE FROM chk WHERE id % 3 = 0;
UPDATE chk SET emb = emb * '[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2]' WHERE id % 5 = 0;
VACUUM chk;
INSERT INTO chk
	SELECT i, i % 7, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 16) WHERE i > 0)::embedding, 'doc'
	FROM generate_series(4001, 4500) i;
SELECT c.relname, k.*
FROM pg_class c, LATERAL crossmodal_hnsw_check(c.oid::regclass, true) k
WHERE c.relname LIKE 'chk%' AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'crossmodal_hnsw');
-- heapallindexed defaults to false
SELECT count(*) FROM crossmodal_hnsw_check('chk_cos');
SELECT count(*) FROM crossmodal_hnsw_check('chk_empty_idx', heapallindexed => true);

-- Errors: not an index, not a crossmodal_hnsw index, NULL.
SELECT * FROM crossmodal_hnsw_check('chk');
SELECT * FROM crossmodal_hnsw_check('chk_pkey');
SELECT * FROM crossmodal_hnsw_check(NULL);

-- Superuser only unless granted, as amcheck's functions.
CREATE ROLE chk_reader;
GRANT SELECT ON chk TO chk_reader;
SET ROLE chk_reader;
SELECT * FROM crossmodal_hnsw_check('chk_cos');
RESET ROLE;
GRANT EXECUTE ON FUNCTION crossmodal_hnsw_check(regclass, boolean) TO chk_reader;
SET ROLE chk_reader;
SELECT count(*) FROM crossmodal_hnsw_check('chk_cos', true);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION crossmodal_hnsw_check(regclass, boolean) FROM chk_reader;
DROP OWNED BY chk_reader;
DROP ROLE chk_reader;

DROP TABLE chk, chk_empty;
