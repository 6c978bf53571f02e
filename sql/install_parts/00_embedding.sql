-- 00_embedding.sql: the embedding type, its I/O, casts, arithmetic, comparisons and aggregates.
-- (Parts of the install script: 00-09 the type and distances, 10-19 encoders, 20-29 the index.)

\echo Use "CREATE EXTENSION crossmodal" to load this file. \quit

CREATE TYPE embedding;

-- Every C function names its symbol, which carries the crossmodal_ prefix: the
-- library exports nothing else (extension/crossmodal.h).

CREATE FUNCTION embedding_in(cstring, oid, integer) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_out(embedding) RETURNS cstring
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_typmod_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_typmod_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_recv(internal, oid, integer) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_send(embedding) RETURNS bytea
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Storage MAIN, chosen on measurements (README, "Storage"): a 512-d value
-- (2056 bytes) is just over TOAST's 2032-byte threshold, so EXTERNAL (what
-- pgvector uses) moves every such value out of line; the heap then looks tiny
-- to the planner and an exact scan over 100,000 rows gets no parallel plan.
-- MAIN keeps a value inline until the row no longer fits in a page (about
-- 2030 dimensions) and still moves larger ones out of line, so 3072-d values
-- remain storable (PLAIN would refuse them).  TOAST does try to compress MAIN
-- values of rows over 2 KB, but pglz gives up on float data after 1 KB
-- without a match and lz4 output that is not smaller is discarded, so real
-- embeddings are stored uncompressed (pg_column_compression is NULL).
CREATE TYPE embedding (
	INPUT = embedding_in,
	OUTPUT = embedding_out,
	TYPMOD_IN = embedding_typmod_in,
	TYPMOD_OUT = embedding_typmod_out,
	RECEIVE = embedding_recv,
	SEND = embedding_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = int4,
	STORAGE = main
);

COMMENT ON TYPE embedding IS 'vector of 1 to 16000 float4 elements, text form [1,2.5,-0.03]';

-- Casts.  Arrays convert on assignment (INSERT ... VALUES (ARRAY[...])); to
-- integer[] rounds, so it must be asked for.

CREATE FUNCTION embedding(embedding, integer, boolean) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (embedding AS embedding)
	WITH FUNCTION embedding(embedding, integer, boolean) AS IMPLICIT;

-- One name for the four, array_to_embedding, as pgvector's array_to_vector.
CREATE FUNCTION array_to_embedding(integer[], integer, boolean) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_from_integer_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(real[], integer, boolean) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_from_real_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(double precision[], integer, boolean) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_from_double_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_embedding(numeric[], integer, boolean) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_from_numeric_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (integer[] AS embedding)
	WITH FUNCTION array_to_embedding(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS embedding)
	WITH FUNCTION array_to_embedding(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS embedding)
	WITH FUNCTION array_to_embedding(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS embedding)
	WITH FUNCTION array_to_embedding(numeric[], integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION embedding_to_integer_array(embedding) RETURNS integer[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_to_integer_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_to_real_array(embedding) RETURNS real[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_to_real_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_to_double_array(embedding) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_to_double_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_to_numeric_array(embedding) RETURNS numeric[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_to_numeric_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (embedding AS integer[])
	WITH FUNCTION embedding_to_integer_array(embedding);
CREATE CAST (embedding AS real[])
	WITH FUNCTION embedding_to_real_array(embedding) AS ASSIGNMENT;
CREATE CAST (embedding AS double precision[])
	WITH FUNCTION embedding_to_double_array(embedding) AS ASSIGNMENT;
CREATE CAST (embedding AS numeric[])
	WITH FUNCTION embedding_to_numeric_array(embedding) AS ASSIGNMENT;

-- Functions.

CREATE FUNCTION dims(embedding) RETURNS integer
	AS 'MODULE_PATHNAME', 'crossmodal_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dims(embedding) IS 'number of dimensions';
CREATE FUNCTION norm(embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION norm(embedding) IS 'Euclidean (L2) norm';
-- Not "normalize": NORMALIZE(x) is SQL-standard syntax that the parser turns
-- into pg_catalog.normalize(text), so an overload could never be called
-- unqualified.  l2_normalize is the name pgvector users know.
CREATE FUNCTION l2_normalize(embedding) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_normalize(embedding) IS 'scaled to unit L2 norm; the zero embedding is returned unchanged';
CREATE FUNCTION subvector(embedding, integer, integer) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_subvector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subvector(embedding, integer, integer) IS 'count elements from start (1-based)';

-- Element-wise arithmetic.

CREATE FUNCTION embedding_add(embedding, embedding) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sub(embedding, embedding) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_mul(embedding, embedding) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR + (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = embedding_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = embedding_sub);
CREATE OPERATOR * (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = embedding_mul, COMMUTATOR = *);

-- Concatenation.  Without it, embedding || unknown would resolve to text
-- concatenation ('[1,2,3]'::embedding || '[4,5]' giving the text [1,2,3][4,5]).
CREATE FUNCTION embedding_concat(embedding, embedding) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_concat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION embedding_concat(embedding, embedding) IS
	'the elements of the first embedding followed by those of the second';
CREATE OPERATOR || (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_concat);

-- Comparisons: element by element, then fewer dimensions first.  Any two
-- embeddings compare, whatever their dimensions, so that sorting, DISTINCT,
-- GROUP BY and unique indexes work on mixed columns.

CREATE FUNCTION embedding_lt(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_le(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_eq(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ne(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_ge(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_gt(embedding, embedding) RETURNS boolean
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_cmp(embedding, embedding) RETURNS integer
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_hash(embedding) RETURNS integer
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_hash_extended(embedding, bigint) RETURNS bigint
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR < (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_lt,
	COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_le,
	COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_eq,
	COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR <> (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ne,
	COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_ge,
	COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = embedding, RIGHTARG = embedding, FUNCTION = embedding_gt,
	COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR CLASS embedding_ops
	DEFAULT FOR TYPE embedding USING btree AS
		OPERATOR 1 <,
		OPERATOR 2 <=,
		OPERATOR 3 =,
		OPERATOR 4 >=,
		OPERATOR 5 >,
		FUNCTION 1 embedding_cmp(embedding, embedding);

CREATE OPERATOR CLASS embedding_ops
	DEFAULT FOR TYPE embedding USING hash AS
		OPERATOR 1 =,
		FUNCTION 1 embedding_hash(embedding),
		FUNCTION 2 embedding_hash_extended(embedding, bigint);

-- Aggregates.  The state is a double precision[] (the count, then the sums),
-- updated in place.  It is a real type, not internal, so that Citus can run
-- the aggregates on its workers and combine their partial states on the
-- coordinator (it ships a state in its text form, exact for float8), and so
-- that parallel workers pass it without serialisation functions.  The
-- transition and combine functions take NULL states, so they are not STRICT.

CREATE FUNCTION embedding_accum(double precision[], embedding) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_accum' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION embedding_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_combine' LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION embedding_avg_final(double precision[]) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_avg_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embedding_sum_final(double precision[]) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_sum_final' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE avg(embedding) (
	SFUNC = embedding_accum,
	STYPE = double precision[],
	FINALFUNC = embedding_avg_final,
	COMBINEFUNC = embedding_combine,
	PARALLEL = SAFE
);

CREATE AGGREGATE sum(embedding) (
	SFUNC = embedding_accum,
	STYPE = double precision[],
	FINALFUNC = embedding_sum_final,
	COMBINEFUNC = embedding_combine,
	PARALLEL = SAFE
);
