-- 20_hnsw.sql: the crossmodal_hnsw index access method and its operator classes.

CREATE FUNCTION crossmodal_hnsw_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME', 'crossmodal_hnsw_handler' LANGUAGE C;

CREATE ACCESS METHOD crossmodal_hnsw TYPE INDEX HANDLER crossmodal_hnsw_handler;
COMMENT ON ACCESS METHOD crossmodal_hnsw IS
	'HNSW graph index for nearest-neighbour ORDER BY over embeddings';

-- Support function 1 is the distance; support function 2 (cosine only) says
-- the index stores unit-normalised vectors, so zero vectors are not indexed.
CREATE OPERATOR CLASS embedding_cosine_ops
	FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <=> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(embedding, embedding),
	FUNCTION 2 norm(embedding);

CREATE OPERATOR CLASS embedding_l2_ops
	FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <-> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(embedding, embedding);

CREATE OPERATOR CLASS embedding_ip_ops
	FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <#> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 embedding_negative_inner_product(embedding, embedding);

CREATE OPERATOR CLASS embedding_l1_ops
	FOR TYPE embedding USING crossmodal_hnsw AS
	OPERATOR 1 <+> (embedding, embedding) FOR ORDER BY float_ops,
	FUNCTION 1 l1_distance(embedding, embedding);

-- Diagnosis: the heap TIDs of every element stored in a crossmodal_hnsw index,
-- read page by page rather than through the graph.
CREATE FUNCTION crossmodal_hnsw_heap_tids(regclass) RETURNS SETOF tid
	AS 'MODULE_PATHNAME', 'crossmodal_hnsw_heap_tids' LANGUAGE C STRICT PARALLEL SAFE;

-- Checking an index: its structure against the on-disk format and, with
-- heapallindexed, that every row of its table is in it; one row per problem
-- found, none when the index is in good order.  Read-only, safe on a standby
-- and alongside writes.  Superuser only unless granted (as amcheck's).
CREATE FUNCTION crossmodal_hnsw_check(index regclass, heapallindexed boolean DEFAULT false,
	OUT blkno bigint, OUT offnum integer, OUT problem text, OUT detail text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'crossmodal_hnsw_check' LANGUAGE C STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION crossmodal_hnsw_check(regclass, boolean) IS
	'verifies a crossmodal_hnsw index (and with heapallindexed, that every table row is in it); one row per problem';
REVOKE ALL ON FUNCTION crossmodal_hnsw_check(regclass, boolean) FROM PUBLIC;
