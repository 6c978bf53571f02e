-- encode_cache: a query that repeats an encoder call with the same model and
-- input encodes once.  Every call into the runtime logs one DEBUG1 line
-- ("crossmodal: encoding N texts with model ..."), so the lines below count
-- encodes.  Parallel workers would encode on their own: off.

\getenv abs_srcdir PG_ABS_SRCDIR
\set golden :abs_srcdir '/golden'
\set images :abs_srcdir '/golden/images/'
SET crossmodal.model_path = :'golden';
SET crossmodal.default_model = 'tiny-clip-quickgelu-f32';
SET max_parallel_workers_per_gather = 0;
SET jit = off;

CREATE TEMP TABLE items AS
SELECT g AS id, ARRAY(SELECT sin(g * 7 + i) FROM generate_series(1, 48) i)::embedding AS e
FROM generate_series(1, 200) g;
ANALYZE items;
CREATE TEMP TABLE img (file text PRIMARY KEY, data bytea);
INSERT INTO img
SELECT f, pg_read_binary_file(:'images' || f)
FROM unnest(ARRAY['gray_64x48.png', 'palette_150x90.gif', 'tiny_7x5.png']) f;

-- Without an index the STABLE form (default model) is an expression of the
-- sequential scan, evaluated for each of the 200 rows.
EXPLAIN (COSTS OFF, VERBOSE)
SELECT id FROM items ORDER BY e <=> encode_text('a red heart') LIMIT 3;

-- The models load before the log level drops (loading logs their path).
SELECT dims(encode_text('tiny-clip-gelu-p16-f16', 'warm up')) AS f16, dims(encode_text('warm up')) AS f32;

-- Reference embeddings, one statement per text.
CREATE TEMP TABLE ref (t text, e embedding);
INSERT INTO ref VALUES ('a cat', encode_text('a cat'));
INSERT INTO ref VALUES ('a dog', encode_text('a dog'));

SET client_min_messages = debug1;

-- A constant: encoded once, not once per row.
SELECT id FROM items ORDER BY e <=> encode_text('a red heart') LIMIT 3;
-- Two call sites with the same input (a threshold and the order): once.
SELECT count(*) FROM (SELECT id FROM items WHERE e <=> encode_text('a red heart') < 1
                      ORDER BY e <=> encode_text('a red heart')) s;
-- A query parameter of a generic plan: once per execution.
SET plan_cache_mode = force_generic_plan;
PREPARE nearest(text) AS
SELECT id FROM items ORDER BY e <=> encode_text('tiny-clip-quickgelu-f32', $1) LIMIT 3;
EXECUTE nearest('a red heart');
EXECUTE nearest('a blue car');
DEALLOCATE nearest;
RESET plan_cache_mode;
-- An input that varies from row to row: once per distinct input (cat, dog).
SELECT q.txt, (SELECT id FROM items ORDER BY e <=> encode_text(q.txt) LIMIT 1) AS nearest
FROM (VALUES (1, 'a cat'), (2, 'a dog'), (3, 'a cat'), (4, 'a dog')) q(n, txt) ORDER BY q.n;
-- PL/pgSQL evaluates one expression with its variable's changing values:
-- each value gets its own embedding (a cat, a dog; the second cat is found).
DO $$
DECLARE
	txt text;
	e embedding;
BEGIN
	FOREACH txt IN ARRAY ARRAY['a cat', 'a dog', 'a cat'] LOOP
		e := encode_text(txt);
		IF e::text <> (SELECT r.e::text FROM ref r WHERE r.t = txt) THEN
			RAISE EXCEPTION 'wrong embedding for %', txt;
		END IF;
	END LOOP;
END $$;
-- Images, with the bytes read again for every row (a volatile argument): once.
SELECT id FROM items ORDER BY e <=> encode_image(pg_read_binary_file(:'images' || 'tiny_7x5.png')) LIMIT 3;
-- Batch forms: the array once.
SELECT id FROM items ORDER BY e <=> (encode_texts(ARRAY['a cat', 'a dog']))[2] LIMIT 3;
SELECT id FROM items
ORDER BY e <=> (encode_images(ARRAY[pg_read_binary_file(:'images' || 'tiny_7x5.png'),
                                    pg_read_binary_file(:'images' || 'gray_64x48.png')]))[1] LIMIT 3;
-- image_labels on every row: each image once, the labels once.
SELECT file, (SELECT label FROM image_labels(data, ARRAY['a cat', 'a dog', 'a car'], 1)) AS label
FROM img ORDER BY file;
-- The cache lasts for the transaction: a second statement finds the text,
-- the next transaction encodes it again.
BEGIN;
SELECT dims(encode_text('a green tree'));
SELECT dims(encode_text('a green tree'));
COMMIT;
SELECT dims(encode_text('a green tree'));
-- Another default model is another entry.
BEGIN;
SELECT dims(encode_text('a green tree'));
SET LOCAL crossmodal.default_model = 'tiny-clip-gelu-p16-f16';
SELECT dims(encode_text('a green tree'));
COMMIT;
-- Failures are not remembered: in one transaction, the undecodable image
-- is tried again, and fails again (22P02).
DO $$
BEGIN
	FOR i IN 1 .. 2 LOOP
		BEGIN
			PERFORM encode_image('\x0001020304'::bytea);
		EXCEPTION WHEN invalid_text_representation THEN
			RAISE NOTICE 'call %: not an image', i;
		END;
	END LOOP;
END $$;

-- An image's embedding depends on the image settings too (a superuser may
-- SET them within a transaction): after a change, the same bytes are
-- encoded again, at a call site with a constant argument as well as through
-- the transaction's cache, and the earlier setting's embedding is found
-- again when the setting comes back.  The image has transparent pixels, so
-- a white background gives another embedding.
RESET client_min_messages;
SELECT '\x' || encode(pg_read_binary_file(:'images' || 'rgba_100x100.png'), 'hex') AS rgba \gset
CREATE TEMP TABLE background (n int, background text, e embedding);
SET client_min_messages = debug1;
BEGIN;
INSERT INTO background
SELECT n, set_config('crossmodal.image_background', b, true), encode_image(:'rgba'::bytea)
FROM (VALUES (1, 'none'), (2, 'white'), (3, 'none')) v(n, b) ORDER BY n;
SELECT n, background, e::text = (SELECT e::text FROM background WHERE n = 1) AS same_as_none
FROM background ORDER BY n;
-- A lower crossmodal.max_image_pixels applies to an image encoded before.
SET LOCAL crossmodal.max_image_pixels = 100;
SELECT dims(encode_image(:'rgba'::bytea));
COMMIT;

RESET client_min_messages;

-- What the cache returns is what encoding again returns: the text forms of
-- the cached embedding (the third row's) and of one encoded afresh in
-- another transaction are equal, for every form.
CREATE TEMP TABLE cached AS
SELECT encode_text('a red heart') AS t,
       encode_image(pg_read_binary_file(:'images' || 'tiny_7x5.png')) AS i,
       encode_texts(ARRAY['a cat', 'a dog']) AS ts,
       encode_images(ARRAY[pg_read_binary_file(:'images' || 'tiny_7x5.png')]) AS "is"
FROM generate_series(1, 3) OFFSET 2;
SELECT t::text = encode_text('tiny-clip-quickgelu-f32', 'a red heart')::text AS text_same,
       i::text = encode_image('tiny-clip-quickgelu-f32', pg_read_binary_file(:'images' || 'tiny_7x5.png'))::text AS image_same,
       ts::text = encode_texts('tiny-clip-quickgelu-f32', ARRAY['a cat', 'a dog'])::text AS texts_same,
       "is"::text = encode_images('tiny-clip-quickgelu-f32', ARRAY[pg_read_binary_file(:'images' || 'tiny_7x5.png')])::text AS images_same
FROM cached;

-- Under the smallest work_mem (64kB) 300 distinct texts of this model do
-- not fit (an entry takes over 256 bytes): the cache starts again when
-- full, and each of 600 rows still gets its text's embedding (compared with
-- embeddings computed in another transaction).
CREATE TEMP TABLE ref300 AS SELECT g, encode_text('text ' || g) AS e FROM generate_series(0, 299) g;
SET work_mem = '64kB';
SELECT count(*) AS rows, count(*) FILTER (WHERE encode_text('text ' || (s.g % 300))::text = r.e::text) AS same
FROM generate_series(1, 600) s(g) JOIN ref300 r ON r.g = s.g % 300;
RESET work_mem;
