-- encode_errors: every error of the SQL encoders, with its SQLSTATE, and that
-- the backend keeps working after each; cancellation by statement_timeout.
--
-- Broken model directories live in test/broken_models (see its README).
-- Messages can name files under the test tree; the try() helper below
-- reports SQLSTATE, message, detail and hint with that absolute prefix
-- replaced by $SRCDIR so that the expected output does not depend on where
-- the tree is.

\getenv abs_srcdir PG_ABS_SRCDIR
\set golden :abs_srcdir '/golden'
\set images :abs_srcdir '/golden/images/'
\set golden_and_broken :abs_srcdir '/golden:' :abs_srcdir '/broken_models'
\set m32 '''tiny-clip-quickgelu-f32'''
SET crossmodal.model_path = :'golden';

CREATE TEMP TABLE srcdir AS SELECT :'abs_srcdir'::text AS path;
GRANT SELECT ON srcdir TO PUBLIC;
CREATE FUNCTION pg_temp.try(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	state text;
	msg text;
	detail text;
	hint text;
	src text := (SELECT path FROM srcdir);
BEGIN
	EXECUTE query;
	RETURN NEXT 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
		detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
	RETURN NEXT state || ': ' || replace(msg, src, '$SRCDIR');
	IF detail <> '' THEN RETURN NEXT 'DETAIL: ' || replace(detail, src, '$SRCDIR'); END IF;
	IF hint <> '' THEN RETURN NEXT 'HINT: ' || replace(hint, src, '$SRCDIR'); END IF;
END $$;

CREATE TEMP TABLE img AS
SELECT pg_read_binary_file(:'images' || 'landscape_320x240.png') AS png,
       pg_read_binary_file(:'images' || 'tiny_7x5.png') AS tiny;

-- Unknown model: 42704, with the models on the path in the hint.
SELECT pg_temp.try($$SELECT encode_text('no-such-model', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_image('no-such-model', (SELECT tiny FROM img))$$);
SELECT pg_temp.try($$SELECT encode_texts('no-such-model', ARRAY['a cat'])$$);
SELECT pg_temp.try($$SELECT * FROM image_labels('no-such-model', (SELECT tiny FROM img), ARRAY['a cat'])$$);
-- A directory that is not a model (no config.json) is no model either.
SELECT pg_temp.try($$SELECT encode_text('images', 'a cat')$$);
-- The default model is looked up the same way.
SET crossmodal.default_model = 'absent-model';
SELECT pg_temp.try($$SELECT encode_text('a cat')$$);
RESET crossmodal.default_model;
-- A path with no model at all.
SET crossmodal.model_path = '/nonexistent-crossmodal-dir';
SELECT pg_temp.try($$SELECT encode_text('tiny-clip-quickgelu-f32', 'a cat')$$);
SELECT count(*) AS models_on_empty_path FROM crossmodal_models();
SET crossmodal.model_path = :'golden';

-- Model names are checked before any file is touched: 22023.
SELECT pg_temp.try($$SELECT encode_text('', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('../golden/tiny-clip-quickgelu-f32', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('..', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('sub/dir', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('.hidden', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('tab	name', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text(repeat('x', 129), 'a cat')$$);
SELECT pg_temp.try($$SET crossmodal.default_model = '../etc'$$);
SELECT pg_temp.try($$SET crossmodal.default_model = ''$$);
SHOW crossmodal.default_model;

-- Settings reserved to superusers.
CREATE ROLE crossmodal_regress_user;
SET ROLE crossmodal_regress_user;
SELECT pg_temp.try($$SET crossmodal.model_path = '/tmp'$$);
SELECT pg_temp.try($$SET crossmodal.max_image_bytes = '1GB'$$);
SELECT pg_temp.try($$SET crossmodal.max_image_pixels = 1000000000$$);
SET crossmodal.threads = 2;
RESET crossmodal.threads;
RESET ROLE;
DROP ROLE crossmodal_regress_user;
-- Unknown settings under the reserved prefix are refused.
SELECT pg_temp.try($$SET crossmodal.no_such_setting = 1$$);

-- Undecodable images: 22P02 with the decoder's reason.
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', '\x00010203'::bytea)$$);
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', ''::bytea)$$);
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', substring((SELECT png FROM img) for 100))$$);
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', convert_to('<svg xmlns="http://www.w3.org/2000/svg"/>', 'UTF8'))$$);
-- In a batch, the failing element is named (1-based).
SELECT pg_temp.try($$SELECT encode_images('tiny-clip-quickgelu-f32', ARRAY[(SELECT tiny FROM img), '\x00'::bytea])$$);
SELECT pg_temp.try($$SELECT * FROM image_labels('tiny-clip-quickgelu-f32', '\xffd8ff'::bytea, ARRAY['a cat'])$$);

-- Over a limit: 54000, naming the setting.
SET crossmodal.max_image_bytes = 1000;
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', (SELECT png FROM img))$$);
SELECT pg_temp.try($$SELECT encode_images('tiny-clip-quickgelu-f32', ARRAY[(SELECT tiny FROM img), (SELECT png FROM img)])$$);
SELECT pg_temp.try($$SELECT * FROM image_labels('tiny-clip-quickgelu-f32', (SELECT png FROM img), ARRAY['a cat'])$$);
SELECT dims(encode_image(:m32, (SELECT tiny FROM img))) AS small_image_still_fits;
RESET crossmodal.max_image_bytes;
SET crossmodal.max_image_pixels = 10000;
SELECT pg_temp.try($$SELECT encode_image('tiny-clip-quickgelu-f32', (SELECT png FROM img))$$);
SELECT pg_temp.try($$SELECT encode_images('tiny-clip-quickgelu-f32', ARRAY[(SELECT tiny FROM img), (SELECT png FROM img)])$$);
SELECT dims(encode_image(:m32, (SELECT tiny FROM img))) AS small_image_still_fits;
RESET crossmodal.max_image_pixels;
-- Too many inputs in one batch call.
SELECT pg_temp.try($$SELECT encode_texts('tiny-clip-quickgelu-f32', array_fill('x'::text, ARRAY[10001]))$$);
SELECT pg_temp.try($$SELECT * FROM image_labels('tiny-clip-quickgelu-f32', (SELECT tiny FROM img), array_fill('x'::text, ARRAY[10001]))$$);
SELECT cardinality(encode_texts(:m32, array_fill('x'::text, ARRAY[10000]))) AS at_the_limit;

-- NULL elements: 22004.  NULL arguments: NULL (the functions are strict).
SELECT pg_temp.try($$SELECT encode_texts('tiny-clip-quickgelu-f32', ARRAY['a', NULL, 'c'])$$);
SELECT pg_temp.try($$SELECT encode_images('tiny-clip-quickgelu-f32', ARRAY[NULL::bytea])$$);
SELECT pg_temp.try($$SELECT * FROM image_labels('tiny-clip-quickgelu-f32', (SELECT tiny FROM img), ARRAY['a', NULL])$$);
SELECT encode_text(:m32, NULL) IS NULL AS null_text, encode_image(NULL::text, '\x00'::bytea) IS NULL AS null_model,
       encode_texts(:m32, NULL) IS NULL AS null_array;
-- k must be positive.
SELECT pg_temp.try($$SELECT * FROM image_labels('tiny-clip-quickgelu-f32', (SELECT tiny FROM img), ARRAY['a'], 0)$$);

-- Broken model directories: the error names the file and what is wrong;
-- nothing is cached, so the same error comes again, and the backend keeps
-- working.
SET crossmodal.model_path = :'golden_and_broken';
SELECT pg_temp.try($$SELECT encode_text('no-weights', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('bad-weights', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('bad-config', 'a cat')$$);
SELECT pg_temp.try($$SELECT encode_text('bad-weights', 'a cat')$$);
-- A checkpoint in shards: an index naming a shard that is not there fails
-- naming it; the one-shard copy of the golden F16 model (its index and a link
-- to its weights) gives the same embeddings as the model itself.
SELECT pg_temp.try($$SELECT encode_text('sharded-missing', 'a cat')$$);
SELECT encode_text('sharded', 'a cat') = encode_text('tiny-clip-gelu-p16-f16', 'a cat') AS sharded_same,
       encode_text('sharded', 'a dog') <> encode_text('tiny-clip-gelu-p16-f16', 'a cat') AS sharded_differs;
SELECT name, dimensions, weight_dtype, loaded, replace(problem, :'abs_srcdir', '$SRCDIR') AS problem
FROM crossmodal_models();
SELECT dims(encode_text(:m32, 'still working')) AS still_working;
-- Unknown-model hints list every model on the path, broken ones included.
SELECT pg_temp.try($$SELECT encode_text('no-such-model', 'a cat')$$);
SET crossmodal.model_path = :'golden';

-- Cancellation: statement_timeout stops a long batch between layers with the
-- usual error, and the backend then encodes as before.  The batch (2000
-- images, many seconds of work) is built before the timeout is set, so only
-- the encode can run into it.
CREATE TEMP TABLE big AS
SELECT array_agg(png) AS imgs FROM img, generate_series(1, 2000);
SELECT dims(encode_image(:m32, (SELECT tiny FROM img))) AS warm;
SET statement_timeout = '100ms';
SELECT cardinality(encode_images(:m32, imgs)) FROM big;
SELECT cardinality(encode_images(:m32, imgs)) FROM big;
RESET statement_timeout;
SELECT encode_texts(:m32, ARRAY['a cat', 'a dog']) = ARRAY[encode_text(:m32, 'a cat'), encode_text(:m32, 'a dog')]
  AS same_after_cancel;
