-- 01_distance.sql: distance functions and the operators <=> <-> <#> <+>.

-- COST 50 (50 x cpu_operator_cost): measured on a table held in memory, one
-- 512-d distance call takes about half the time of reading a heap page, far
-- more than the default of 1 assumes.  With the default the planner sees an
-- exact top-k as page-bound, gains almost nothing from parallel workers (it
-- does not divide page costs among them) and keeps it serial; with 50 a
-- 30,000 x 512 table already gets a parallel plan.  Kept moderate so that
-- ordinary scans stay under jit_above_cost.

CREATE FUNCTION cosine_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 50;
COMMENT ON FUNCTION cosine_distance(embedding, embedding) IS
	'1 - cosine similarity, in [0, 2]; NaN when either embedding is zero';
CREATE FUNCTION l2_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 50;
COMMENT ON FUNCTION l2_distance(embedding, embedding) IS 'Euclidean distance';
CREATE FUNCTION inner_product(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 50;
COMMENT ON FUNCTION inner_product(embedding, embedding) IS 'dot product';
CREATE FUNCTION embedding_negative_inner_product(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_embedding_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 50;
COMMENT ON FUNCTION embedding_negative_inner_product(embedding, embedding) IS
	'minus the dot product, so that ascending order puts the largest products first';
CREATE FUNCTION l1_distance(embedding, embedding) RETURNS double precision
	AS 'MODULE_PATHNAME', 'crossmodal_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 50;
COMMENT ON FUNCTION l1_distance(embedding, embedding) IS 'taxicab (L1) distance';

CREATE OPERATOR <=> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = cosine_distance, COMMUTATOR = <=>);
CREATE OPERATOR <-> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = l2_distance, COMMUTATOR = <->);
CREATE OPERATOR <#> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = embedding_negative_inner_product, COMMUTATOR = <#>);
CREATE OPERATOR <+> (LEFTARG = embedding, RIGHTARG = embedding,
	FUNCTION = l1_distance, COMMUTATOR = <+>);
