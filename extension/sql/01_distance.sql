-- 01_distance.sql: distance functions and the operators <=> <-> <#> <+>.

-- COST 10: one call reads two embeddings (2 KB each at 512 dimensions), a
-- few dozen times the work of a plain comparison; with the default of 1 the
-- planner undervalues spreading an exact top-k scan over parallel workers.

CREATE FUNCTION cosine_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION cosine_distance(embedding, embedding) IS
	'1 - cosine similarity, in [0, 2]; NaN when either embedding is zero';
CREATE FUNCTION l2_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION l2_distance(embedding, embedding) IS 'Euclidean distance';
CREATE FUNCTION inner_product(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION inner_product(embedding, embedding) IS 'dot product';
CREATE FUNCTION embedding_negative_inner_product(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION embedding_negative_inner_product(embedding, embedding) IS
	'minus the dot product, so that ascending order puts the largest products first';
CREATE FUNCTION l1_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10;
COMMENT ON FUNCTION l1_distance(embedding, embedding) IS 'taxicab (L1) distance';

CREATE OPERATOR <=> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = cosine_distance, COMMUTATOR = <=>);
CREATE OPERATOR <-> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = l2_distance, COMMUTATOR = <->);
CREATE OPERATOR <#> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = embedding_negative_inner_product, COMMUTATOR = <#>);
CREATE OPERATOR <+> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = l1_distance, COMMUTATOR = <+>);
