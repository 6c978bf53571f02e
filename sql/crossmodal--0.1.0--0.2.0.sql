-- crossmodal--0.1.0--0.2.0.sql: ALTER EXTENSION crossmodal UPDATE from 0.1.0 to 0.2.0.
-- Every object that 0.2.0 adds or changes relative to 0.1.0, in the order the
-- install script (sql/install_parts/) creates them.

\echo Use "ALTER EXTENSION crossmodal UPDATE TO '0.2.0'" to load this file. \quit

-- 10_encoders.sql: image_labels documents its family-dependent scores;
-- crossmodal_models() gains the family and tokenizer columns (a new result
-- type: dropped and created again).
COMMENT ON FUNCTION image_labels(bytea, text[], integer) IS
	'zero-shot labelling: the k labels most likely to describe the image; CLIP models score with the softmax over all labels of logit_scale x cosine, SigLIP models with a per-label sigmoid(logit_scale x cosine + logit_bias)';
COMMENT ON FUNCTION image_labels(text, bytea, text[], integer) IS
	'zero-shot labelling with the named model: the k most likely labels and their scores (softmax over the labels for CLIP, per-label sigmoid for SigLIP)';
DROP FUNCTION crossmodal_models();
CREATE FUNCTION crossmodal_models(
	OUT name text, OUT directory text, OUT family text, OUT tokenizer text,
	OUT dimensions integer, OUT image_size integer,
	OUT parameters bigint, OUT weight_dtype text, OUT loaded boolean, OUT problem text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'crossmodal_models'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED COST 1000 ROWS 10;
COMMENT ON FUNCTION crossmodal_models() IS
	'models on crossmodal.model_path: family (clip, siglip), tokenizer kind, dimensions, image size, parameters, weight dtype, whether this backend has loaded it, and why it cannot be loaded';
