-- 10_encoders.sql: encode_text, encode_image, their batch forms, image_labels, crossmodal_models.

-- Forms without a model name read crossmodal.default_model, so they are
-- STABLE.  Forms naming the model are IMMUTABLE, as to_tsvector(regconfig,
-- text) is: the same model files give the same embedding, which lets them
-- serve in generated columns and expression indexes (replacing a model's
-- files under the same name is then like changing a text search
-- configuration: rebuild what depends on it).  A model is loaded in each
-- backend that uses it, parallel workers included, so all are PARALLEL SAFE.
--
-- COST 10000 (10000 x cpu_operator_cost = 25 units, about 25 page reads):
-- an encode takes milliseconds, not microseconds, so the planner must not
-- think re-evaluating one is free (for example in a filter evaluated per
-- row rather than once).  The batch forms and image_labels encode many
-- inputs per call: COST 100000.

CREATE FUNCTION encode_text(input text) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_encode_text'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION encode_text(text) IS
	'L2-normalised embedding of a text by the model crossmodal.default_model';

CREATE FUNCTION encode_text(model text, input text) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_encode_text_model'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION encode_text(text, text) IS
	'L2-normalised embedding of a text by the named model';

CREATE FUNCTION encode_image(input bytea) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_encode_image'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION encode_image(bytea) IS
	'L2-normalised embedding of an encoded image (PNG, JPEG, GIF, BMP) by the model crossmodal.default_model';

CREATE FUNCTION encode_image(model text, input bytea) RETURNS embedding
	AS 'MODULE_PATHNAME', 'crossmodal_encode_image_model'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 10000;
COMMENT ON FUNCTION encode_image(text, bytea) IS
	'L2-normalised embedding of an encoded image (PNG, JPEG, GIF, BMP) by the named model';

CREATE FUNCTION encode_texts(inputs text[]) RETURNS embedding[]
	AS 'MODULE_PATHNAME', 'crossmodal_encode_texts'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION encode_texts(text[]) IS
	'embeddings of many texts in one batched call, in order, by the model crossmodal.default_model';

CREATE FUNCTION encode_texts(model text, inputs text[]) RETURNS embedding[]
	AS 'MODULE_PATHNAME', 'crossmodal_encode_texts_model'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION encode_texts(text, text[]) IS
	'embeddings of many texts in one batched call, in order, by the named model';

CREATE FUNCTION encode_images(inputs bytea[]) RETURNS embedding[]
	AS 'MODULE_PATHNAME', 'crossmodal_encode_images'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION encode_images(bytea[]) IS
	'embeddings of many images in one batched call, in order, by the model crossmodal.default_model';

CREATE FUNCTION encode_images(model text, inputs bytea[]) RETURNS embedding[]
	AS 'MODULE_PATHNAME', 'crossmodal_encode_images_model'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION encode_images(text, bytea[]) IS
	'embeddings of many images in one batched call, in order, by the named model';

CREATE FUNCTION image_labels(image bytea, labels text[], k integer DEFAULT 5)
	RETURNS TABLE (label text, score real)
	AS 'MODULE_PATHNAME', 'crossmodal_image_labels'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100000 ROWS 5;
COMMENT ON FUNCTION image_labels(bytea, text[], integer) IS
	'zero-shot labelling: the k labels most likely to describe the image; CLIP models score with the softmax over all labels of logit_scale x cosine, SigLIP models with a per-label sigmoid(logit_scale x cosine + logit_bias)';

CREATE FUNCTION image_labels(model text, image bytea, labels text[], k integer DEFAULT 5)
	RETURNS TABLE (label text, score real)
	AS 'MODULE_PATHNAME', 'crossmodal_image_labels_model'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100000 ROWS 5;
COMMENT ON FUNCTION image_labels(text, bytea, text[], integer) IS
	'zero-shot labelling with the named model: the k most likely labels and their scores (softmax over the labels for CLIP, per-label sigmoid for SigLIP)';

-- Reads the model directories and this backend's cache: VOLATILE, and
-- PARALLEL RESTRICTED because "loaded" describes the backend running it.
CREATE FUNCTION crossmodal_models(
	OUT name text, OUT directory text, OUT family text, OUT tokenizer text,
	OUT dimensions integer, OUT image_size integer,
	OUT parameters bigint, OUT weight_dtype text, OUT loaded boolean, OUT problem text)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'crossmodal_models'
	LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED COST 1000 ROWS 10;
COMMENT ON FUNCTION crossmodal_models() IS
	'models on crossmodal.model_path: family (clip, siglip), tokenizer kind, dimensions, image size, parameters, weight dtype, whether this backend has loaded it, and why it cannot be loaded';
