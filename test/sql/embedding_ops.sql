-- embedding_ops: distance functions and operators, arithmetic, functions, comparisons, indexes and aggregates.

CREATE FUNCTION pg_temp.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	message text;
	detail text;
BEGIN
	EXECUTE statement;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || message || coalesce(' | ' || nullif(detail, ''), '');
END $$;

-- Distances on small exact cases.
SELECT '[1,2,3]'::embedding <-> '[4,6,3]' AS l2,
	   '[1,2,3]'::embedding <#> '[4,-5,6]' AS negative_ip,
	   inner_product('[1,2,3]', '[4,-5,6]') AS ip,
	   '[1,2,3]'::embedding <+> '[4,-5,6]' AS l1,
	   '[1,0]'::embedding <=> '[0,1]' AS cos_orthogonal,
	   '[1,1]'::embedding <=> '[2,2]' AS cos_same_direction,
	   '[1,1]'::embedding <=> '[-3,-3]' AS cos_opposite,
	   '[3,4]'::embedding <=> '[4,3]' AS cos_general;
SELECT l2_distance('[1,2,3]', '[4,6,3]'), cosine_distance('[3,4]', '[4,3]'),
	   l1_distance('[1,2,3]', '[4,-5,6]'), embedding_negative_inner_product('[1,2,3]', '[4,-5,6]');

-- Cosine distance with a zero vector is NaN (the cosine is undefined); NaN
-- sorts after every number, so zero vectors come last in nearest-neighbour order.
SELECT '[0,0]'::embedding <=> '[1,2]' AS zero_left, '[1,2]'::embedding <=> '[0,0]' AS zero_right,
	   '[0,0]'::embedding <=> '[0,0]' AS both_zero, '[-0,0]'::embedding <=> '[1,2]' AS negative_zero;
SELECT v FROM (VALUES ('[0,0]'::embedding), ('[1,0]'), ('[0,1]'), ('[1,1]')) t(v)
ORDER BY v <=> '[1,0.1]';

-- The kernels against a double-precision reference computed in SQL, at
-- lengths around the 8- and 32-wide blocks and at 512 and 16000.
CREATE TABLE embedding_ops_pairs AS
SELECT n, a, b FROM (
	SELECT n,
		   (SELECT array_agg(sin(i * 0.37 + n) * 3)::real[] FROM generate_series(1, n) i) AS a,
		   (SELECT array_agg(cos(i * 1.91 - n))::real[] FROM generate_series(1, n) i) AS b
	FROM unnest(ARRAY[1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 67, 512, 16000]) n
) s;
WITH ref AS (
	SELECT n, a, b,
		   (SELECT sum(x::float8 * y) FROM unnest(a, b) u(x, y)) AS ip,
		   (SELECT sqrt(sum((x::float8 - y) ^ 2)) FROM unnest(a, b) u(x, y)) AS l2,
		   (SELECT sum(abs(x::float8 - y)) FROM unnest(a, b) u(x, y)) AS l1,
		   (SELECT sum(x::float8 * x) FROM unnest(a) x) AS aa,
		   (SELECT sum(y::float8 * y) FROM unnest(b) y) AS bb
	FROM embedding_ops_pairs
)
SELECT n,
	   abs(inner_product(a::embedding, b::embedding) - ip) <= 1e-5 * sqrt(aa * bb) AS ip_ok,
	   abs((a::embedding <#> b::embedding) + ip) <= 1e-5 * sqrt(aa * bb) AS negative_ip_ok,
	   abs((a::embedding <-> b::embedding) - l2) <= 1e-5 * l2 AS l2_ok,
	   abs((a::embedding <+> b::embedding) - l1) <= 1e-5 * l1 AS l1_ok,
	   abs((a::embedding <=> b::embedding) - (1 - ip / sqrt(aa * bb))) <= 1e-5 AS cosine_ok,
	   abs(norm(a::embedding) - sqrt(aa)) <= 1e-12 * sqrt(aa) AS norm_ok
FROM ref ORDER BY n;

-- Values near the float4 limits: the sums are recomputed in double rather than overflowing.
SELECT '[3e38,3e38]'::embedding <-> '[-3e38,-3e38]' AS l2,
	   '[3e38,3e38]'::embedding <+> '[-3e38,-3e38]' AS l1,
	   inner_product('[3e38,3e38]', '[3e38,3e38]') AS ip,
	   '[3e38,3e38]'::embedding <=> '[1e38,1e38]' AS cos,
	   norm('[3e38,3e38]') AS norm;

-- Operands of different dimensions.
SELECT what, pg_temp.error_of(statement) FROM (VALUES
	('<=>', $$SELECT '[1,2,3]'::embedding <=> '[1,2]'$$),
	('<->', $$SELECT '[1,2,3]'::embedding <-> '[1,2]'$$),
	('<#>', $$SELECT '[1,2]'::embedding <#> '[1,2,3]'$$),
	('<+>', $$SELECT '[1]'::embedding <+> '[1,2]'$$),
	('cosine_distance', $$SELECT cosine_distance('[1,2,3]', '[1,2]')$$),
	('l2_distance', $$SELECT l2_distance('[1,2,3]', '[1,2]')$$),
	('inner_product', $$SELECT inner_product('[1,2,3]', '[1,2]')$$),
	('l1_distance', $$SELECT l1_distance('[1,2,3]', '[1,2]')$$),
	('+', $$SELECT '[1,2,3]'::embedding + '[1,2]'$$),
	('-', $$SELECT '[1,2,3]'::embedding - '[1,2]'$$),
	('*', $$SELECT '[1,2,3]'::embedding * '[1,2]'$$),
	('avg', $$SELECT avg(e) FROM (VALUES ('[1,2,3]'::embedding), ('[1,2]')) t(e)$$),
	('sum', $$SELECT sum(e) FROM (VALUES ('[1,2]'::embedding), ('[1,2,3]')) t(e)$$)
) t(what, statement);

-- Element-wise arithmetic.
SELECT '[1,2,3]'::embedding + '[0.5,-2,1e-3]' AS sum,
	   '[1,2,3]'::embedding - '[0.5,-2,1e-3]' AS difference,
	   '[1,2,3]'::embedding * '[0.5,-2,1e-3]' AS product;
SELECT what, pg_temp.error_of(statement) FROM (VALUES
	('+ overflow', $$SELECT '[1,3e38]'::embedding + '[1,3e38]'$$),
	('- overflow', $$SELECT '[-3e38]'::embedding - '[3e38]'$$),
	('* overflow', $$SELECT '[1,1e20]'::embedding * '[1,1e20]'$$),
	('* underflow', $$SELECT '[1e-30,1]'::embedding * '[1e-30,1]'$$)
) t(what, statement);

-- dims, norm, l2_normalize, subvector.
SELECT dims('[1,2,3]'), norm('[3,4]'), norm('[0,0]'), l2_normalize('[3,4]'), l2_normalize('[0,0,0]');
SELECT norm(l2_normalize('[1,2,3,4,5]'));
-- NORMALIZE(x) is SQL syntax for pg_catalog.normalize(text), hence l2_normalize.
SELECT pg_temp.error_of($$SELECT normalize('[3,4]'::embedding)$$);
SELECT subvector('[1,2,3,4,5]', 2, 3), subvector('[1,2,3,4,5]', 1, 1), subvector('[1,2,3,4,5]', 4, 10),
	   subvector('[1,2,3,4,5]', -1, 3), subvector('[1,2,3,4,5]', 1, 2147483647);
SELECT what, pg_temp.error_of(statement) FROM (VALUES
	('count 0', $$SELECT subvector('[1,2,3]', 1, 0)$$),
	('negative count', $$SELECT subvector('[1,2,3]', 2, -1)$$),
	('start past the end', $$SELECT subvector('[1,2,3]', 4, 1)$$),
	('range before the start', $$SELECT subvector('[1,2,3]', -5, 3)$$),
	('start near int max', $$SELECT subvector('[1,2,3]', 2147483647, 2147483647)$$)
) t(what, statement);

-- Comparisons: element by element, then fewer dimensions first; -0 = 0.
SELECT '[1,2]'::embedding < '[1,3]' AS lt, '[1,2]'::embedding <= '[1,2]' AS le,
	   '[1,2]'::embedding = '[1,2]' AS eq, '[1,2]'::embedding <> '[1,2]' AS ne,
	   '[2]'::embedding >= '[1,9]' AS ge, '[1,2,0]'::embedding > '[1,2]' AS gt,
	   '[0,-0]'::embedding = '[-0,0]' AS zeros_equal, '[1,2]'::embedding = '[1,2,0]' AS dims_differ,
	   embedding_cmp('[1,2]', '[1,2,3]') AS cmp_prefix, embedding_cmp('[2]', '[1,2,3]') AS cmp_greater,
	   embedding_cmp('[1]', '[1]') AS cmp_equal;

CREATE TABLE embedding_ops_t (id int, e embedding);
INSERT INTO embedding_ops_t VALUES
	(1, '[1,2]'), (2, '[1,1]'), (3, '[1,2,0]'), (4, '[0,5]'), (5, '[1,2]'), (6, '[-0,5]'),
	(7, '[1]'), (8, NULL), (9, '[-1,100]');
SELECT id, e FROM embedding_ops_t ORDER BY e, id;
SELECT id, e FROM embedding_ops_t ORDER BY e DESC NULLS LAST, id;
-- DISTINCT and GROUP BY, both by sorting and by hashing (-0 and 0 group together).
SET enable_hashagg = off;
EXPLAIN (COSTS OFF) SELECT e, count(*) FROM embedding_ops_t GROUP BY e;
SELECT e, count(*) FROM embedding_ops_t GROUP BY e ORDER BY e;
SELECT DISTINCT e FROM embedding_ops_t ORDER BY e;
RESET enable_hashagg;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT e, count(*) FROM embedding_ops_t GROUP BY e;
SELECT e, count(*) FROM embedding_ops_t GROUP BY e ORDER BY e;
RESET enable_sort;
-- The hash agrees with equality; the extended hash with seed 0 has the same low 32 bits.
SELECT embedding_hash('[0,1]') = embedding_hash('[-0,1]') AS zeros_hash_alike,
	   embedding_hash('[1,2]') <> embedding_hash('[2,1]') AS order_matters,
	   embedding_hash('[1,2]') <> embedding_hash('[1,2,0]') AS dims_matter,
	   (embedding_hash_extended('[1,2,3]', 0) & 4294967295) = (embedding_hash('[1,2,3]')::bigint & 4294967295) AS extended_low_bits,
	   embedding_hash_extended('[1,2,3]', 0) <> embedding_hash_extended('[1,2,3]', 1) AS seed_matters;

-- Indexes: a unique btree index, a hash index, and merge/hash joins.
CREATE UNIQUE INDEX embedding_ops_unique ON embedding_ops_t (e);
DELETE FROM embedding_ops_t WHERE id IN (5, 6);
CREATE UNIQUE INDEX embedding_ops_unique ON embedding_ops_t (e);
INSERT INTO embedding_ops_t VALUES (10, '[1,1]');
INSERT INTO embedding_ops_t VALUES (10, '[-0,5]');
CREATE INDEX embedding_ops_hash ON embedding_ops_t USING hash (e);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM embedding_ops_t WHERE e = '[1,2]';
SELECT id FROM embedding_ops_t WHERE e = '[1,2]';
DROP INDEX embedding_ops_unique;
EXPLAIN (COSTS OFF) SELECT id FROM embedding_ops_t WHERE e = '[0,5]';
SELECT id FROM embedding_ops_t WHERE e = '[0,5]';
RESET enable_seqscan;
SELECT a.id, b.id FROM embedding_ops_t a JOIN embedding_ops_t b ON a.e = b.e AND a.id < b.id;

-- Aggregates.
SELECT avg(e), sum(e) FROM (VALUES ('[1,2,3]'::embedding), ('[3,-2,6]'), (NULL)) t(e);
SELECT avg(e), sum(e) FROM (VALUES (NULL::embedding)) t(e);
SELECT avg(e), sum(e) FROM embedding_ops_t WHERE false;
SELECT dims(e) AS d, avg(e), sum(e) FROM embedding_ops_t GROUP BY dims(e) ORDER BY d;
SELECT pg_temp.error_of($$SELECT sum(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) t(e)$$);
-- The average of values near the limit does not overflow (double sums).
SELECT avg(e) FROM (VALUES ('[3e38]'::embedding), ('[3e38]')) t(e);

-- In parallel: partial aggregates in the workers, combined in the leader,
-- with the same results as a serial run.
CREATE TABLE embedding_ops_agg AS
SELECT g AS id, ARRAY[g % 7, g % 11 - 5, 1.0 / g]::real[]::embedding AS e
FROM generate_series(1, 30000) g;
ANALYZE embedding_ops_agg;
SET max_parallel_workers_per_gather = 0;
CREATE TEMP TABLE embedding_ops_serial AS SELECT avg(e) AS a, sum(e) AS s FROM embedding_ops_agg;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT avg(e), sum(e) FROM embedding_ops_agg;
SELECT a, s FROM embedding_ops_serial;
SELECT p.a = s.a AS avg_equal, p.s = s.s AS sum_equal
FROM (SELECT avg(e) AS a, sum(e) AS s FROM embedding_ops_agg) p, embedding_ops_serial s;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET parallel_leader_participation;

-- Concatenation: the elements of both, in order, within the dimension limit
-- (without the operator, embedding || '[4,5]' was text concatenation).
SELECT '[1,2,3]'::embedding || '[4,5]' AS concat, pg_typeof('[1,2,3]'::embedding || '[4,5]') AS type,
       dims(array_fill(0, ARRAY[15999])::embedding || '[1]') AS at_limit,
       '[1]'::embedding || NULL AS with_null;
SELECT pg_temp.error_of($$SELECT array_fill(0, ARRAY[16000])::embedding || '[1]'$$);

-- The state is a double precision[] (the count, then the double sums), which
-- Citus computes on its workers and ships in its text form to the
-- coordinator, where the combine function merges them: partial states of
-- three groups, through text, give the one-pass average and sum.
CREATE AGGREGATE pg_temp.embedding_state(embedding) (SFUNC = embedding_accum, STYPE = double precision[]);
CREATE AGGREGATE pg_temp.embedding_merge_avg(double precision[]) (
	SFUNC = embedding_combine, STYPE = double precision[], FINALFUNC = embedding_avg_final);
CREATE AGGREGATE pg_temp.embedding_merge_sum(double precision[]) (
	SFUNC = embedding_combine, STYPE = double precision[], FINALFUNC = embedding_sum_final);
SELECT pg_temp.embedding_state(e) FROM (VALUES ('[1,2,3]'::embedding), ('[3,-2.5,6]'), (NULL)) t(e);
SELECT pg_temp.embedding_merge_avg(s::text::float8[]) = (SELECT a FROM embedding_ops_serial) AS avg_equal,
	   pg_temp.embedding_merge_sum(s::text::float8[]) = (SELECT s FROM embedding_ops_serial) AS sum_equal
FROM (SELECT pg_temp.embedding_state(e) AS s FROM embedding_ops_agg GROUP BY id % 3) p;
-- A state that does not come from the transition function (an INITCOND, or
-- one received from elsewhere) is checked.
CREATE FUNCTION pg_temp.avg_from(initcond text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
	detail text;
BEGIN
	EXECUTE format('CREATE AGGREGATE pg_temp.avg_from_state(embedding) (SFUNC = embedding_accum,'
		' STYPE = double precision[], FINALFUNC = embedding_avg_final, INITCOND = %L)', initcond);
	BEGIN
		SELECT coalesce(pg_temp.avg_from_state(e)::text, 'NULL') INTO result FROM (VALUES ('[1,2]'::embedding)) t(e);
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS result = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		result := SQLSTATE || ': ' || result || coalesce(' | ' || nullif(detail, ''), '');
	END;
	DROP AGGREGATE pg_temp.avg_from_state(embedding);
	RETURN result;
END $$;
SELECT initcond, pg_temp.avg_from(initcond) FROM (VALUES ('{0,0,0}'), ('{1,1,1}'), ('{0,0}'), ('{}'), ('{0}'), ('{1}'),
	('{{0,0},{0,0}}'), ('{0,NULL,0}'), ('{0.5,0,0}'), ('{-1,0,0}'), ('{0,NaN,0}'), ('{0,0,-Infinity}')) t(initcond);
-- Called directly, as pgvector's vector_accum and vector_combine may be, the
-- functions return a new state and leave their argument alone (here a
-- column's value, which a change in place would alter in the table).
CREATE TEMP TABLE agg_states (s double precision[]);
INSERT INTO agg_states VALUES ('{1,3,4}');
SELECT embedding_accum(s, '[1,2]') AS accum, embedding_combine(s, '{2,1,1}') AS combine,
       embedding_combine(NULL, s) AS combine_first, embedding_accum(NULL, '[1,2]') AS accum_first,
       embedding_avg_final(embedding_accum(s, '[1,2]')) AS avg
FROM agg_states;
SELECT s AS unchanged FROM agg_states;
-- {0}, the count alone, is the empty state (pgvector's INITCOND): it takes
-- the dimensions of what is added to it.
SELECT embedding_accum('{0}', '[1,2,3]') AS accum_empty, embedding_combine('{0}', '{1,2}') AS combine_empty1,
       embedding_combine('{1,2}', '{0}') AS combine_empty2, embedding_combine('{0}', '{0}') AS combine_empties,
       embedding_avg_final('{0}') IS NULL AS avg_empty, embedding_avg_final('{2,2,4,6}') AS avg;
-- The aggregate as pgvector declares it, through a parallel plan whose
-- workers may see no rows (their partial states are then {0}).
CREATE AGGREGATE pg_temp.pgvector_style_avg(embedding) (SFUNC = embedding_accum, STYPE = double precision[],
	FINALFUNC = embedding_avg_final, COMBINEFUNC = embedding_combine, INITCOND = '{0}', PARALLEL = SAFE);
CREATE TABLE agg_parallel (e embedding(3)) WITH (parallel_workers = 2);
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT pg_temp.pgvector_style_avg(e) FROM agg_parallel;
SELECT pg_temp.pgvector_style_avg(e) IS NULL AS no_rows FROM agg_parallel;
INSERT INTO agg_parallel VALUES ('[1,2,3]'), ('[3,4,5]');
SELECT pg_temp.pgvector_style_avg(e) AS two_rows FROM agg_parallel;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
DROP TABLE agg_parallel;
-- Forged states: malformed ones are 22023, too many elements 54000 (as an
-- embedding would be), a sum past double's range 22003.
SELECT s, split_part(pg_temp.error_of(format('SELECT embedding_accum(%L, %L)', s, '[1,2,3]')), ' | ', 1) AS accum,
       split_part(pg_temp.error_of(format('SELECT embedding_combine(%L, %L)', s, '{1,2,3,4}')), ' | ', 1) AS combine,
       split_part(pg_temp.error_of(format('SELECT embedding_avg_final(%L)', s)), ' | ', 1) AS avg
FROM (VALUES ('{}'), ('{{0}}'), ('{NULL}'), ('{1}'), ('{0,0}'), ('{0.5,0,0,0}'), ('{1,0,Infinity,0}')) t(s);
SELECT pg_temp.error_of($$SELECT embedding_combine('{1,1e308}', '{1,1e308}')$$) AS overflow;
SELECT pg_temp.error_of($$SELECT embedding_accum(array_fill(0::float8, ARRAY[16002]), '[1]')$$) AS too_large;
SELECT pg_temp.error_of($$SELECT embedding_combine('{0}', array_fill(0::float8, ARRAY[16002]))$$) AS too_large;

-- Every function of the type is IMMUTABLE and PARALLEL SAFE, and STRICT but
-- for the aggregate transition and combine functions (which take NULL states).
SELECT p.oid::regprocedure AS function, p.provolatile, p.proparallel, p.proisstrict
FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crossmodal')
  AND (p.prokind = 'a' OR p.proname LIKE 'embedding\_%'
	   OR 'embedding'::regtype = ANY (p.proargtypes) OR p.prorettype = 'embedding'::regtype)
  AND (p.provolatile <> 'i' OR p.proparallel <> 's' OR NOT p.proisstrict)
ORDER BY p.oid::regprocedure::text;
DROP TABLE embedding_ops_pairs, embedding_ops_t, embedding_ops_agg;
