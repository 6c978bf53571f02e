-- embed_column: crossmodal_embed_column fills and refreshes embedding columns
-- in batches (same embeddings as one encode per row, NULL sources, text keys,
-- partitioned tables), records its runs in crossmodal_embed_progress, resumes
-- a refresh after a failed batch, and reports every misuse with its SQLSTATE.
-- Progress NOTICEs carry timings, so they are not shown here (TAP test
-- 072_embed_column checks them, and the view from another session).

\getenv abs_srcdir PG_ABS_SRCDIR
\set golden :abs_srcdir '/golden'
\set images :abs_srcdir '/golden/images/'
SET crossmodal.model_path = :'golden';
SET crossmodal.default_model = 'tiny-clip-quickgelu-f32';
SET client_min_messages = warning;
\set SHOW_CONTEXT never

CREATE TABLE pics (id integer PRIMARY KEY, caption text, data bytea,
                   caption_emb embedding, image_emb embedding(48));
INSERT INTO pics (id, caption, data)
SELECT g, CASE WHEN g % 10 <> 0 THEN 'picture number ' || g END,
       CASE WHEN g % 7 <> 0 THEN pg_read_binary_file(:'images' || f) END
FROM generate_series(1, 60) g,
     LATERAL (SELECT f FROM unnest(ARRAY['gray_64x48.png', 'palette_150x90.gif', 'exact_224x224.bmp',
                                         'portrait_240x320_q92.jpg', 'rgba_100x100.png']) WITH ORDINALITY AS i(f, n)
              WHERE n = g % 5 + 1) f;

-- Fill: every row, NULL where the source is NULL, the same embeddings as one
-- call per row (batched products may round differently: compare by distance).
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', batch_size => 16);
CALL crossmodal_embed_column('pics', 'data', 'image_emb', 'tiny-clip-quickgelu-f32', batch_size => 7);
SELECT count(caption_emb) AS captions, count(image_emb) AS images,
       count(*) FILTER (WHERE (caption IS NULL) <> (caption_emb IS NULL)) AS caption_nulls_wrong,
       count(*) FILTER (WHERE (data IS NULL) <> (image_emb IS NULL)) AS image_nulls_wrong,
       max(caption_emb <=> encode_text(caption)) < 1e-6 AS captions_match,
       max(image_emb <=> encode_image(data)) < 1e-6 AS images_match
FROM pics;
SELECT run_id, relation, source_column, target_column, model, refresh, state, rows_done, rows_total,
       percent, time_left, finished_at IS NOT NULL AS finished, error
FROM crossmodal_embed_progress ORDER BY run_id;

-- A fill only visits rows whose target is NULL.
UPDATE pics SET caption_emb = NULL WHERE id IN (3, 4, 5);
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb');
SELECT run_id, state, rows_done, rows_total FROM crossmodal_embed_progress WHERE run_id = 3;
SELECT count(*) FILTER (WHERE caption_emb IS NULL) AS still_null FROM pics WHERE caption IS NOT NULL;

-- Refresh recomputes every row and clears embeddings whose source is now NULL.
UPDATE pics SET caption = NULL WHERE id = 11;
UPDATE pics SET caption_emb = '[1,2,3]' WHERE id = 12;
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', refresh => true, batch_size => 25);
SELECT caption_emb IS NULL AS cleared FROM pics WHERE id = 11;
SELECT caption_emb <=> encode_text(caption) < 1e-6 AS recomputed FROM pics WHERE id = 12;

-- A refresh that fails part way keeps its committed batches, records the
-- error, and the next identical call resumes after the last committed key.
UPDATE pics SET data = '\x89504e470d0a1a0a'::bytea WHERE id = 38;
UPDATE pics SET image_emb = NULL;
CALL crossmodal_embed_column('pics', 'data', 'image_emb', refresh => true, batch_size => 16);
\echo :SQLSTATE
SELECT run_id, state, rows_done, rows_total, error FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;
SELECT count(image_emb) AS embedded_before_error, max(id) FILTER (WHERE image_emb IS NOT NULL) AS last_id FROM pics;
UPDATE pics SET data = pg_read_binary_file(:'images' || 'tiny_7x5.png') WHERE id = 38;
CALL crossmodal_embed_column('pics', 'data', 'image_emb', refresh => true, batch_size => 16);
SELECT run_id, state, rows_done, rows_total, resumed_from FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 2;
SELECT count(*) FILTER (WHERE (data IS NULL) <> (image_emb IS NULL)) AS wrong,
       max(image_emb <=> encode_image(data)) < 1e-6 AS match FROM pics;
-- resume => false starts over.
CALL crossmodal_embed_column('pics', 'data', 'image_emb', refresh => true, resume => false);
SELECT run_id, state, rows_done, rows_total, resumed_from FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;

-- on_error => ignore: a row whose source cannot be encoded is skipped (left
-- without an embedding; a refresh clears the one it had) with a WARNING that
-- names its key, up to ten a run, and counted in the run; the other rows of
-- its batch and the rest are embedded as usual.
UPDATE pics SET data = '\x89504e470d0a1a0a'::bytea WHERE id IN (20, 45);
UPDATE pics SET data = 'not an image'::bytea WHERE id = 46;
UPDATE pics SET image_emb = NULL WHERE id BETWEEN 15 AND 50;
CALL crossmodal_embed_column('pics', 'data', 'image_emb', batch_size => 8, on_error => 'ignore');
SELECT run_id, state, rows_done, rows_total, rows_skipped, error
FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;
SELECT array_agg(id ORDER BY id) FILTER (WHERE data IS NOT NULL AND image_emb IS NULL) AS skipped,
       count(*) FILTER (WHERE id NOT IN (20, 45, 46) AND (data IS NULL) <> (image_emb IS NULL)) AS wrong,
       max(image_emb <=> encode_image(data)) FILTER (WHERE id NOT IN (20, 45, 46)) < 1e-6 AS others_match
FROM pics;
UPDATE pics SET image_emb = (SELECT image_emb FROM pics WHERE id = 21) WHERE id = 20;
CALL crossmodal_embed_column('pics', 'data', 'image_emb', refresh => true, batch_size => 16, on_error => 'ignore');
SELECT rows_done, rows_total, rows_skipped FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;
SELECT array_agg(id ORDER BY id) FILTER (WHERE data IS NOT NULL AND image_emb IS NULL) AS skipped,
       max(image_emb <=> encode_image(data)) FILTER (WHERE id NOT IN (20, 45, 46)) < 1e-6 AS others_match
FROM pics;
-- Twelve bad rows from the first key on: ten WARNINGs, all twelve counted.
CREATE TABLE broken (id int PRIMARY KEY, data bytea, emb embedding);
INSERT INTO broken SELECT g, CASE WHEN g IN (7, 14) THEN pg_read_binary_file(:'images' || 'tiny_7x5.png')
                                  ELSE '\x00'::bytea END FROM generate_series(1, 14) g;
CALL crossmodal_embed_column('broken', 'data', 'emb', batch_size => 5, on_error => 'ignore');
SELECT rows_done, rows_total, rows_skipped FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;
SELECT array_agg(id ORDER BY id) FILTER (WHERE emb IS NOT NULL) AS embedded FROM broken;
-- A model that cannot be used fails the call, rather than skipping every row;
-- and the default, on_error => stop, stops at the first bad row.
CALL crossmodal_embed_column('broken', 'data', 'emb', 'no-such-model', on_error => 'ignore');
\echo :SQLSTATE
CALL crossmodal_embed_column('broken', 'data', 'emb');
\echo :SQLSTATE
DROP TABLE broken;
UPDATE pics SET data = pg_read_binary_file(:'images' || 'tiny_7x5.png') WHERE id IN (20, 45, 46);
UPDATE pics SET image_emb = encode_image(data) WHERE id IN (20, 45, 46);

-- A text key with a unique index, and a partitioned table.
CREATE TABLE words (word text NOT NULL UNIQUE, emb embedding);
INSERT INTO words SELECT 'word ' || g FROM generate_series(1, 30) g;
CALL crossmodal_embed_column('words', 'word', 'emb', key_column => 'word', batch_size => 4);
SELECT count(emb) AS embedded, max(emb <=> encode_text(word)) < 1e-6 AS match FROM words;
CREATE TABLE parted (id bigint PRIMARY KEY, t varchar(40), emb embedding) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (1) TO (10);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (10) TO (100);
INSERT INTO parted SELECT g, 'row ' || g FROM generate_series(1, 20) g;
CALL crossmodal_embed_column('parted', 't', 'emb', batch_size => 6);
SELECT count(emb) AS embedded, max(emb <=> encode_text(t)) < 1e-6 AS match FROM parted;

-- Misuse.
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', batch_size => 0);
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', on_error => 'skip');
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', on_error => NULL);
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', NULL, 'caption_emb');
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'nope', 'caption_emb');
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'caption', 'nope');
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'id', 'caption_emb');
\echo :SQLSTATE
CALL crossmodal_embed_column('pics', 'caption', 'data');
\echo :SQLSTATE
CREATE VIEW pics_view AS SELECT * FROM pics;
CALL crossmodal_embed_column('pics_view', 'caption', 'caption_emb');
\echo :SQLSTATE
CREATE TABLE gen (id int PRIMARY KEY, t text,
                  emb embedding GENERATED ALWAYS AS (encode_text('tiny-clip-quickgelu-f32', t)) STORED);
CALL crossmodal_embed_column('gen', 't', 'emb');
\echo :SQLSTATE
CREATE TABLE nokey (t text, emb embedding);
CALL crossmodal_embed_column('nokey', 't', 'emb');
\echo :SQLSTATE
CALL crossmodal_embed_column('nokey', 't', 'emb', key_column => 't');
\echo :SQLSTATE
-- An unknown model, and embeddings that do not fit the column's typmod: the
-- run is recorded as failed with the error.
CALL crossmodal_embed_column('pics', 'caption', 'caption_emb', 'no-such-model', refresh => true);
\echo :SQLSTATE
CREATE TABLE small (id int PRIMARY KEY, t text, emb embedding(3));
INSERT INTO small VALUES (1, 'a'), (2, 'b');
CALL crossmodal_embed_column('small', 't', 'emb');
\echo :SQLSTATE
SELECT relation, state, rows_done, error FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 2;
-- Commits need a CALL outside a transaction block.
BEGIN;
CALL crossmodal_embed_column('words', 'word', 'emb', key_column => 'word');
\echo :SQLSTATE
ROLLBACK;

-- Other roles see and change only their own runs.
CREATE ROLE regress_embed_other;
GRANT SELECT, UPDATE ON words TO regress_embed_other;
SET ROLE regress_embed_other;
SELECT count(*) AS visible_runs FROM crossmodal_embed_progress;
UPDATE words SET emb = NULL WHERE word = 'word 7';
CALL crossmodal_embed_column('words', 'word', 'emb', key_column => 'word');
SELECT relation, state, rows_done, run_by FROM crossmodal_embed_progress;
UPDATE crossmodal_embed_runs SET state = 'failed';
RESET ROLE;
SELECT count(*) FILTER (WHERE state = 'finished') AS finished_runs, count(*) AS runs FROM crossmodal_embed_progress;
DELETE FROM crossmodal_embed_runs WHERE run_by = 'regress_embed_other';
REVOKE ALL ON words FROM regress_embed_other;
DROP ROLE regress_embed_other;

-- A unique key that may be NULL: a NULL-key row has no place in the key
-- order (a run used to skip it, or to start over for ever when a batch
-- ended on it), so the key must be NOT NULL.
CREATE TABLE nullkey (k int UNIQUE, t text, emb embedding);
INSERT INTO nullkey VALUES (1, 'a'), (NULL, 'b'), (3, 'c');
CALL crossmodal_embed_column('nullkey', 't', 'emb', key_column => 'k', batch_size => 3);
\echo :SQLSTATE
UPDATE nullkey SET k = 2 WHERE k IS NULL;
ALTER TABLE nullkey ALTER COLUMN k SET NOT NULL;
CALL crossmodal_embed_column('nullkey', 't', 'emb', key_column => 'k', batch_size => 3);
SELECT k, emb IS NOT NULL AS embedded FROM nullkey ORDER BY k;

-- Any role may write runs of its own in the runs table.  A superuser's call
-- (row-level security does not restrict superusers) reads only its own runs:
-- a forged unfinished refresh of another role cannot make it resume past
-- every row.
CREATE ROLE regress_embed_forger;
SET ROLE regress_embed_forger;
INSERT INTO crossmodal_embed_runs (relid, relation, source_column, target_column, key_column, model,
                                   refresh, batch_size, state, rows_total, last_key)
VALUES ('nullkey'::regclass, 'nullkey', 't', 'emb', 'k', 'tiny-clip-quickgelu-f32', true, 256, 'failed', 3, '3');
RESET ROLE;
CALL crossmodal_embed_column('nullkey', 't', 'emb', refresh => true, key_column => 'k');
SELECT run_by = current_user AS own_run, state, rows_done, resumed_from
FROM crossmodal_embed_progress ORDER BY run_id DESC LIMIT 1;
DELETE FROM crossmodal_embed_runs WHERE run_by = 'regress_embed_forger';
DROP ROLE regress_embed_forger;

-- A batch also stops at maintenance_work_mem of source bytes (at least one
-- row): its sources are one array, which holds at most 1 GB, so large photos
-- need smaller batches than batch_size says.  Four images of about 400 kB
-- (a PNG followed by zeros, which the decoder does not read) under 1 MB: the
-- first three rows make one batch (one transaction), the fourth the next.
CREATE TABLE embed_big (id int PRIMARY KEY, data bytea, emb embedding, batch_xid xid8);
CREATE FUNCTION embed_big_note_xid() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN NEW.batch_xid := pg_current_xact_id(); RETURN NEW; END $$;
CREATE TRIGGER embed_big_note_xid BEFORE UPDATE ON embed_big FOR EACH ROW EXECUTE FUNCTION embed_big_note_xid();
INSERT INTO embed_big
SELECT g, pg_read_binary_file(:'images' || 'tiny_7x5.png') || decode(repeat('00', 400 * 1024), 'hex')
FROM generate_series(1, 4) g;
SET maintenance_work_mem = '1MB';
CALL crossmodal_embed_column('embed_big', 'data', 'emb');
RESET maintenance_work_mem;
SELECT id, dense_rank() OVER (ORDER BY batch_xid) AS batch, emb <=> encode_image(data) < 1e-6 AS embedded
FROM embed_big ORDER BY id;
DROP TABLE embed_big, nullkey;
DROP FUNCTION embed_big_note_xid();
