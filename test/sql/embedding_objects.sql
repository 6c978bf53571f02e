-- embedding_objects: every object of the extension, and none that would collide with pgvector's.
-- pgvector is not packaged for Debian 12, so the check is against the names it
-- defines (from its documentation and install scripts, up to 0.8): types, access
-- methods, operator classes and families by name; functions by name and
-- argument types (the distance functions, subvector, l2_normalize, avg and sum
-- are deliberately the same names for our type, i.e. separate overloads).

-- Every object, as pg_describe_object names it.  (A module that adds objects
-- adds its lines here.)
SELECT object FROM (
	SELECT pg_describe_object(classid, objid, 0) AS object
	FROM pg_depend
	WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crossmodal')
) o ORDER BY object COLLATE "C";

CREATE TEMP TABLE pgvector_names (kind text, name text);
INSERT INTO pgvector_names
SELECT 'type', unnest(ARRAY['vector', 'halfvec', 'sparsevec'])
UNION ALL
SELECT 'access method', unnest(ARRAY['hnsw', 'ivfflat'])
UNION ALL
SELECT 'operator class', unnest(ARRAY[
	'vector_ops', 'vector_l2_ops', 'vector_ip_ops', 'vector_cosine_ops', 'vector_l1_ops',
	'halfvec_ops', 'halfvec_l2_ops', 'halfvec_ip_ops', 'halfvec_cosine_ops', 'halfvec_l1_ops',
	'sparsevec_ops', 'sparsevec_l2_ops', 'sparsevec_ip_ops', 'sparsevec_cosine_ops', 'sparsevec_l1_ops',
	'bit_hamming_ops', 'bit_jaccard_ops'])
UNION ALL
SELECT 'function', unnest(ARRAY[
	'vector', 'halfvec', 'sparsevec',
	'vector_in', 'vector_out', 'vector_typmod_in', 'vector_recv', 'vector_send',
	'halfvec_in', 'halfvec_out', 'halfvec_typmod_in', 'halfvec_recv', 'halfvec_send',
	'sparsevec_in', 'sparsevec_out', 'sparsevec_typmod_in', 'sparsevec_recv', 'sparsevec_send',
	'l2_distance', 'inner_product', 'cosine_distance', 'l1_distance', 'l2_norm', 'l2_normalize',
	'vector_dims', 'vector_norm', 'binary_quantize', 'subvector', 'hamming_distance', 'jaccard_distance',
	'vector_add', 'vector_sub', 'vector_mul', 'vector_concat',
	'vector_lt', 'vector_le', 'vector_eq', 'vector_ne', 'vector_ge', 'vector_gt', 'vector_cmp',
	'vector_l2_squared_distance', 'vector_negative_inner_product', 'vector_spherical_distance',
	'vector_accum', 'vector_avg', 'vector_combine', 'vector_to_float4',
	'array_to_vector', 'array_to_halfvec', 'array_to_sparsevec',
	'vector_to_halfvec', 'halfvec_to_vector', 'vector_to_sparsevec', 'sparsevec_to_vector',
	'halfvec_to_float4', 'halfvec_to_sparsevec', 'sparsevec_to_halfvec',
	'halfvec_add', 'halfvec_sub', 'halfvec_mul', 'halfvec_concat', 'halfvec_cmp',
	'halfvec_l2_squared_distance', 'halfvec_negative_inner_product', 'halfvec_spherical_distance',
	'halfvec_accum', 'halfvec_avg', 'halfvec_combine',
	'sparsevec_cmp', 'sparsevec_l2_squared_distance', 'sparsevec_negative_inner_product',
	'hnsw_handler', 'ivfflat_handler', 'hnsw_bit_support', 'hnsw_halfvec_support',
	'hnsw_sparsevec_support', 'ivfflat_bit_support', 'ivfflat_halfvec_support',
	'avg', 'sum']);

-- Our objects, with the base name each has in its catalog.
CREATE TEMP VIEW crossmodal_objects AS
SELECT d.classid, d.objid, pg_describe_object(d.classid, d.objid, 0) AS object,
	   CASE d.classid
		   WHEN 'pg_type'::regclass THEN 'type'
		   WHEN 'pg_am'::regclass THEN 'access method'
		   WHEN 'pg_opclass'::regclass THEN 'operator class'
		   WHEN 'pg_opfamily'::regclass THEN 'operator class'
		   WHEN 'pg_proc'::regclass THEN 'function'
	   END AS kind,
	   coalesce((SELECT typname FROM pg_type WHERE d.classid = 'pg_type'::regclass AND oid = d.objid),
				(SELECT amname FROM pg_am WHERE d.classid = 'pg_am'::regclass AND oid = d.objid),
				(SELECT opcname FROM pg_opclass WHERE d.classid = 'pg_opclass'::regclass AND oid = d.objid),
				(SELECT opfname FROM pg_opfamily WHERE d.classid = 'pg_opfamily'::regclass AND oid = d.objid),
				(SELECT proname FROM pg_proc WHERE d.classid = 'pg_proc'::regclass AND oid = d.objid)) AS name
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crossmodal');

-- Collisions: a type, access method or operator class/family named as one of
-- pgvector's, or a function with pgvector's name whose argument types are
-- none of ours (it could then have pgvector's very signature).  Must be empty.
SELECT o.object
FROM crossmodal_objects o JOIN pgvector_names p ON p.kind = o.kind AND p.name = o.name
WHERE o.kind <> 'function'
   OR NOT EXISTS (SELECT 1 FROM pg_proc f, unnest(f.proargtypes) a(t)
				  WHERE f.oid = o.objid AND a.t IN (SELECT objid FROM crossmodal_objects
													WHERE classid = 'pg_type'::regclass));

-- Operators: pgvector's operator names, but every one of ours takes only our types.
SELECT o.object
FROM crossmodal_objects o JOIN pg_operator op ON o.classid = 'pg_operator'::regclass AND op.oid = o.objid
WHERE op.oprleft NOT IN (SELECT objid FROM crossmodal_objects WHERE classid = 'pg_type'::regclass)
   OR op.oprright NOT IN (SELECT objid FROM crossmodal_objects WHERE classid = 'pg_type'::regclass);

-- The checks above do see the intended overloads (so they would see a collision).
SELECT o.name, count(*) FROM crossmodal_objects o JOIN pgvector_names p ON p.kind = o.kind AND p.name = o.name
GROUP BY o.name ORDER BY o.name;
