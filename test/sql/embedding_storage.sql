-- embedding_storage: values stay inline and uncompressed up to 2000 dimensions, larger ones
-- still store, and an exact top-k scan over a 512-d table gets a parallel plan by default.

SELECT typname, typstorage, typalign, typlen FROM pg_type WHERE typname = 'embedding';

-- Deterministic embeddings that do not compress (like real ones).
CREATE FUNCTION embedding_storage_sample(seed int, n int) RETURNS embedding
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT array_agg(sin(seed * 7919 + i * 0.618034))::real[]::embedding FROM generate_series(1, n) i
$$;

CREATE TABLE embedding_storage_t (id int, e embedding);
-- Alone in its row, a 512-d value (2056 bytes) and a 2000-d one (8008 bytes).
INSERT INTO embedding_storage_t VALUES (1, embedding_storage_sample(1, 512)), (2, embedding_storage_sample(2, 2000));
SELECT id, dims(e), pg_column_size(e), pg_column_compression(e) IS NULL AS uncompressed
FROM embedding_storage_t ORDER BY id;
-- Nothing went to the TOAST table: both are inline in the heap.
SELECT pg_relation_size(reltoastrelid) AS toast_bytes FROM pg_class WHERE relname = 'embedding_storage_t';

-- A 3000-d value does not fit in a heap page: it is stored out of line (still uncompressed).
INSERT INTO embedding_storage_t VALUES (3, embedding_storage_sample(3, 3000));
SELECT pg_relation_size(reltoastrelid) > 0 AS toasted FROM pg_class WHERE relname = 'embedding_storage_t';
SELECT id, dims(e), pg_column_size(e), pg_column_compression(e) IS NULL AS uncompressed,
	   e = embedding_storage_sample(id, dims(e)) AS reads_back
FROM embedding_storage_t ORDER BY id;
-- 16000 dimensions too.
INSERT INTO embedding_storage_t VALUES (4, embedding_storage_sample(4, 16000));
SELECT id, dims(e), e = embedding_storage_sample(id, dims(e)) AS reads_back FROM embedding_storage_t WHERE id = 4;

-- TOAST does try to compress rows over 2 KB: a value that compresses (here all
-- zeros) is stored compressed, inline.
INSERT INTO embedding_storage_t VALUES (5, array_fill(0, ARRAY[600])::embedding);
SELECT id, pg_column_size(e) < 600 * 4 AS smaller, pg_column_compression(e) FROM embedding_storage_t WHERE id = 5;

-- 300 rows of 512 dimensions take 100 heap pages: three rows per 8 KB page, all in the heap.
CREATE TABLE embedding_storage_512 (id int, e embedding(512));
INSERT INTO embedding_storage_512 SELECT g, embedding_storage_sample(g, 512) FROM generate_series(1, 300) g;
SELECT pg_relation_size('embedding_storage_512') / current_setting('block_size')::int AS heap_pages,
	   (SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'embedding_storage_512') AS toast_bytes;

-- Exact top-k over 30,000 x 512 (80 MB of heap): with the default planner
-- settings the plan is parallel, because the heap is as large as the data.
INSERT INTO embedding_storage_512
SELECT g, e + array_fill((g % 101)::real / 50, ARRAY[512])::embedding
FROM generate_series(301, 30000) g, embedding_storage_512 b WHERE b.id = g % 300 + 1;
ANALYZE embedding_storage_512;
-- The query embedding comes from a table, so that the plan shows $0 and not 512 numbers.
CREATE TABLE embedding_storage_query AS SELECT embedding_storage_sample(4242, 512) AS q;
EXPLAIN (COSTS OFF)
SELECT id FROM embedding_storage_512 ORDER BY e <=> (SELECT q FROM embedding_storage_query) LIMIT 10;
CREATE TEMP TABLE embedding_storage_parallel AS
SELECT id, e <=> (SELECT q FROM embedding_storage_query) AS distance FROM embedding_storage_512
ORDER BY e <=> (SELECT q FROM embedding_storage_query), id LIMIT 10;
SET max_parallel_workers_per_gather = 0;
EXPLAIN (COSTS OFF)
SELECT id FROM embedding_storage_512 ORDER BY e <=> (SELECT q FROM embedding_storage_query) LIMIT 10;
-- Same hits serially and in parallel.  The rows hold exact duplicates, so the
-- tenth distance can be tied: the id breaks ties in both plans.
SELECT array_agg(id ORDER BY distance, id) = (SELECT array_agg(id ORDER BY distance, id) FROM embedding_storage_parallel) AS same_hits
FROM (SELECT id, e <=> (SELECT q FROM embedding_storage_query) AS distance FROM embedding_storage_512
	  ORDER BY e <=> (SELECT q FROM embedding_storage_query), id LIMIT 10) s;
RESET max_parallel_workers_per_gather;

DROP TABLE embedding_storage_t, embedding_storage_512, embedding_storage_query;
DROP FUNCTION embedding_storage_sample(int, int);
