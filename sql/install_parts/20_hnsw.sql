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
