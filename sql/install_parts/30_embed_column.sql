-- 30_embed_column.sql: crossmodal_embed_column, which fills or refreshes an
-- embedding column of any table in batches with a commit per batch, and the
-- crossmodal_embed_progress view, which shows how far each run is.

-- One row per run, written in the same transaction as each batch, so that a
-- row's rows_done and last_key are exactly what is committed in the table: a
-- run resumes from there after an interruption, and another session sees the
-- progress as each batch commits.  Every role may run the procedure, so every
-- role may write here, but only its own rows (row-level security; the view
-- below runs with the caller's rights).
CREATE TABLE crossmodal_embed_runs (
	run_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	relid oid NOT NULL,
	relation text NOT NULL,
	source_column text NOT NULL,
	target_column text NOT NULL,
	key_column text NOT NULL,
	model text NOT NULL,
	refresh boolean NOT NULL,
	batch_size integer NOT NULL,
	state text NOT NULL DEFAULT 'running'
		CHECK (state IN ('running', 'finished', 'failed', 'cancelled', 'interrupted')),
	rows_total bigint NOT NULL,
	rows_done bigint NOT NULL DEFAULT 0,
	rows_skipped bigint NOT NULL DEFAULT 0,
	last_key text,
	resumed_from bigint,
	error text,
	pid integer NOT NULL DEFAULT pg_backend_pid(),
	backend_start timestamptz,
	run_by name NOT NULL DEFAULT current_user,
	started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	finished_at timestamptz
);
COMMENT ON TABLE crossmodal_embed_runs IS
	'runs of crossmodal_embed_column, one row each, updated as each batch commits (read crossmodal_embed_progress)';
ALTER TABLE crossmodal_embed_runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY crossmodal_embed_runs_own ON crossmodal_embed_runs
	USING (run_by = current_user) WITH CHECK (run_by = current_user);
GRANT SELECT, INSERT, UPDATE, DELETE ON crossmodal_embed_runs TO PUBLIC;

-- A run whose row says running but whose backend is gone (a crash, a killed
-- session, a lost connection) is shown as interrupted.  Rate and time left
-- come from the batches committed so far.
CREATE VIEW crossmodal_embed_progress WITH (security_invoker = true) AS
SELECT r.run_id, r.relation, r.source_column, r.target_column, r.model, r.refresh,
	CASE WHEN r.state = 'running' AND a.pid IS NULL THEN 'interrupted' ELSE r.state END AS state,
	r.rows_done, r.rows_total, r.rows_skipped,
	round(100.0 * least(r.rows_done, r.rows_total) / nullif(r.rows_total, 0), 1) AS percent,
	round((r.rows_done / nullif(extract(epoch FROM r.updated_at - r.started_at), 0))::numeric, 1)
		AS rows_per_second,
	r.updated_at - r.started_at AS elapsed,
	CASE WHEN r.state = 'running' AND a.pid IS NOT NULL AND r.rows_done > 0 THEN
		greatest(r.rows_total - r.rows_done, 0)::float8 / r.rows_done * (r.updated_at - r.started_at)
	END AS time_left,
	r.started_at, r.updated_at, r.finished_at, r.pid, r.run_by, r.error, r.resumed_from
FROM crossmodal_embed_runs r
LEFT JOIN pg_stat_activity a
	ON r.state = 'running' AND a.pid = r.pid
	AND (a.backend_start IS NULL OR a.backend_start = r.backend_start);
COMMENT ON VIEW crossmodal_embed_progress IS
	'progress of crossmodal_embed_column runs: rows done, rate, time left; state interrupted when the run''s backend is gone';
GRANT SELECT ON crossmodal_embed_progress TO PUBLIC;

-- The procedure runs with the caller's rights (it needs UPDATE on the table)
-- and commits after each batch, so it must be called with CALL outside a
-- transaction block.  A procedure that commits cannot carry SET options, so
-- it finds its own schema (the extension is relocatable) and qualifies every
-- name it uses rather than relying on search_path.
CREATE PROCEDURE crossmodal_embed_column(
	relation regclass,
	source_column text,
	target_column text,
	model text DEFAULT NULL,
	batch_size integer DEFAULT 256,
	refresh boolean DEFAULT false,
	key_column text DEFAULT NULL,
	resume boolean DEFAULT true,
	on_error text DEFAULT 'stop')
LANGUAGE plpgsql AS $procedure$
DECLARE
	me constant text := 'crossmodal_embed_column';
	-- Most source bytes in one batch (at least one row, whatever its size):
	-- maintenance_work_mem, as for other maintenance work, and at most 512 MB,
	-- since a batch's sources are one array and an array holds at most 1 GB
	-- (256 phone photos of 4.5 MB could not be one batch).
	batch_bytes constant bigint := least(pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem')),
		512 * 1024 * 1024);
	ext text;
	runs text;
	use_model text;
	src_type oid;
	src_is_image boolean;
	tgt record;
	key_att record;
	encoder text;
	prev record;
	run bigint;
	start_key text;
	from_run bigint;
	total bigint;
	done bigint := 0;
	key_cond text;
	batch_sql text[];
	next_sql text[];
	batch_last text;
	batch_rows bigint;
	last_report timestamptz;
	started timestamptz;
	rate float8;
	failed boolean := false;
	ignore_errors boolean;
	one_by_one integer := 0;
	row_key text;
	skipped bigint := 0;
	err_state text;
	err_message text;
	err_detail text;
	err_hint text;
BEGIN
	SELECT n.nspname INTO ext
	FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
	WHERE e.extname = 'crossmodal';
	runs := format('%I.crossmodal_embed_runs', ext);

	IF relation IS NULL OR source_column IS NULL OR target_column IS NULL
		OR batch_size IS NULL OR refresh IS NULL OR resume IS NULL OR on_error IS NULL THEN
		RAISE EXCEPTION '%: only model and key_column may be NULL', me
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF on_error NOT IN ('stop', 'ignore') THEN
		RAISE EXCEPTION '%: on_error must be stop or ignore, not %', me, on_error
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	ignore_errors := on_error = 'ignore';
	IF batch_size < 1 OR batch_size > 10000 THEN
		RAISE EXCEPTION '%: batch_size must be between 1 and 10000, not %', me, batch_size
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = relation) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '%: "%" is not a table', me, relation
			USING ERRCODE = 'wrong_object_type';
	END IF;

	-- The source: a text-like column (texts) or bytea (encoded images).
	SELECT a.atttypid INTO src_type FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = relation AND a.attname = source_column AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION '%: column "%" of relation "%" does not exist', me, source_column, relation
			USING ERRCODE = 'undefined_column';
	END IF;
	IF src_type = 'bytea'::regtype THEN
		src_is_image := true;
	ELSIF src_type IN ('text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype) THEN
		src_is_image := false;
	ELSE
		RAISE EXCEPTION '%: source column "%" is of type %', me, source_column, format_type(src_type, NULL)
			USING ERRCODE = 'datatype_mismatch',
				HINT = 'The source must be bytea (encoded images) or text (texts).';
	END IF;

	-- The target: an embedding column that is not generated.
	SELECT a.atttypid, a.attgenerated INTO tgt FROM pg_catalog.pg_attribute a
	WHERE a.attrelid = relation AND a.attname = target_column AND a.attnum > 0 AND NOT a.attisdropped;
	IF NOT FOUND THEN
		RAISE EXCEPTION '%: column "%" of relation "%" does not exist', me, target_column, relation
			USING ERRCODE = 'undefined_column';
	END IF;
	IF tgt.atttypid <> format('%I.embedding', ext)::regtype THEN
		RAISE EXCEPTION '%: target column "%" is of type %, not embedding', me, target_column,
			format_type(tgt.atttypid, NULL)
			USING ERRCODE = 'datatype_mismatch';
	END IF;
	IF tgt.attgenerated <> '' THEN
		RAISE EXCEPTION '%: column "%" is a generated column', me, target_column
			USING ERRCODE = 'generated_always',
				DETAIL = 'A generated column is computed whenever its row is written.',
				HINT = format('To recompute it, update its source: UPDATE %s SET %I = %I.', relation,
					source_column, source_column);
	END IF;

	-- Batches follow a unique key, so that each row is visited once and a run
	-- can resume after the last key it committed.  The key must be NOT NULL:
	-- a unique index admits any number of NULLs, and a row with a NULL key
	-- has no place in the key order (its embedding could not be written, and
	-- a batch ending on it would have no last key to go on after).
	IF key_column IS NULL THEN
		SELECT a.attname, a.atttypid INTO key_att
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = relation AND i.indisprimary AND i.indnkeyatts = 1;
		IF NOT FOUND THEN
			RAISE EXCEPTION '%: relation "%" has no single-column primary key', me, relation
				USING ERRCODE = 'invalid_column_reference',
					HINT = 'Name a column with a unique index as key_column.';
		END IF;
	ELSE
		SELECT a.attname, a.atttypid, a.attnotnull INTO key_att
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = relation AND a.attname = key_column AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION '%: column "%" of relation "%" does not exist', me, key_column, relation
				USING ERRCODE = 'undefined_column';
		END IF;
		PERFORM FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a
			ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = relation AND i.indisunique AND i.indisvalid AND i.indnkeyatts = 1
			AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = key_column;
		IF NOT FOUND THEN
			RAISE EXCEPTION '%: key column "%" has no unique index', me, key_column
				USING ERRCODE = 'invalid_column_reference',
					HINT = 'Batches follow the key in order, so it must be unique: a primary key or a column with a unique index.';
		END IF;
		IF NOT key_att.attnotnull THEN
			RAISE EXCEPTION '%: key column "%" is not declared NOT NULL', me, key_column
				USING ERRCODE = 'invalid_column_reference',
					DETAIL = 'A unique index admits NULLs, and rows with a NULL key cannot be visited in key order.',
					HINT = format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', relation, key_column);
		END IF;
	END IF;

	-- The library defines crossmodal.default_model when it is loaded, which
	-- nothing may have done yet in this session: the literal's type input,
	-- run when the statement is parsed, loads it first.
	IF model IS NULL THEN
		EXECUTE format('SELECT current_setting(%L) FROM (SELECT %L::%I.embedding) AS load',
			'crossmodal.default_model', '[0]', ext) INTO use_model;
	ELSE
		use_model := model;
	END IF;
	encoder := format(CASE WHEN src_is_image THEN '%I.encode_images(%L, b.sources)'
		ELSE '%I.encode_texts(%L, b.sources)' END, ext, use_model);
	-- With on_error => ignore, a row whose source cannot be encoded (22P02
	-- undecodable, 54000 over a limit, 0A000 a kind the runtime does not
	-- read) is skipped.  A model that cannot be used fails every row with
	-- such codes too: encoding a known-good input first makes that fail the
	-- call instead of skipping every row.
	IF ignore_errors THEN
		EXECUTE format(CASE WHEN src_is_image
			THEN 'SELECT %I.encode_images(%L, ARRAY[''\x89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478da63686868000003040181752e01bc0000000049454e44ae426082''::bytea])'
			ELSE 'SELECT %I.encode_texts(%L, ARRAY[''a photo''])' END, ext, use_model);
	END IF;

	-- Only one run of this role per column at a time: the check and the new
	-- run's row are made under a lock that the first COMMIT releases.  Here
	-- and below only the caller's own runs are read, even by a superuser
	-- (whom row-level security does not restrict): any role may insert rows
	-- of its own in the runs table, which must not stop or steer the run of
	-- another.
	PERFORM pg_catalog.pg_advisory_xact_lock(
		('x' || left(md5(format('crossmodal_embed_column %s %s', relation::oid, target_column)), 16))::bit(64)::bigint);
	EXECUTE format($q$
		SELECT r.run_id, r.pid FROM %s r
		JOIN pg_catalog.pg_stat_activity a ON a.pid = r.pid
			AND (a.backend_start IS NULL OR a.backend_start = r.backend_start)
		WHERE r.relid = $1 AND r.target_column = $2 AND r.state = 'running' AND r.pid <> pg_catalog.pg_backend_pid()
			AND r.run_by = CURRENT_USER
		LIMIT 1$q$, runs)
		INTO prev USING relation::oid, target_column;
	IF prev.run_id IS NOT NULL THEN
		RAISE EXCEPTION '%: column "%" of "%" is being embedded by another run', me, target_column, relation
			USING ERRCODE = 'object_in_use',
				DETAIL = format('Run %s in process %s.', prev.run_id, prev.pid);
	END IF;

	-- A run of this backend still marked running is not (this call is): it
	-- was stopped where no handler could record it (e.g. a cancel between
	-- batches).
	EXECUTE format($q$UPDATE %s SET state = 'interrupted'
		WHERE state = 'running' AND pid = pg_catalog.pg_backend_pid() AND run_by = CURRENT_USER$q$, runs);

	-- A refresh resumes the newest run of the same work that did not finish
	-- (if the newest such run is not finished); a fill needs no resume point,
	-- as the rows still to do are those whose target is NULL.
	IF refresh AND resume THEN
		EXECUTE format($q$
			SELECT r.run_id, r.last_key, r.state FROM %s r
			WHERE r.relid = $1 AND r.target_column = $2 AND r.source_column = $3 AND r.model = $4
				AND r.key_column = $5 AND r.refresh AND r.run_by = CURRENT_USER
			ORDER BY r.run_id DESC LIMIT 1$q$, runs)
			INTO prev USING relation::oid, target_column, source_column, use_model, key_att.attname;
		IF prev.run_id IS NOT NULL AND prev.state <> 'finished' THEN
			from_run := prev.run_id;
			start_key := prev.last_key;
			EXECUTE format($q$UPDATE %s SET state = 'interrupted' WHERE run_id = $1 AND state = 'running'$q$, runs)
				USING from_run;
		END IF;
	END IF;

	-- What is left, counted once: the denominator of the progress figures.
	EXECUTE format('SELECT count(*) FROM %s t WHERE %s %s', relation,
		CASE WHEN start_key IS NULL THEN 'true' ELSE format('t.%I > %L::%s', key_att.attname, start_key,
			format_type(key_att.atttypid, NULL)) END,
		CASE WHEN refresh THEN '' ELSE format('AND t.%I IS NULL', target_column) END)
		INTO total;

	EXECUTE format($q$
		INSERT INTO %s (relid, relation, source_column, target_column, key_column, model, refresh,
			batch_size, rows_total, last_key, resumed_from, backend_start)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
			(SELECT a.backend_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid()))
		RETURNING run_id$q$, runs)
		INTO run
		USING relation::oid, relation::text, source_column, target_column, key_att.attname, use_model, refresh,
			batch_size, total, start_key, from_run;
	IF from_run IS NOT NULL THEN
		RAISE NOTICE '%: run % resumes run % after key %', me, run, from_run, start_key;
	END IF;
	COMMIT;

	-- One statement per batch: lock the next rows in key order (so that their
	-- source cannot change between reading it and writing its embedding), keep
	-- those within batch_bytes of sources (the others are left for the next
	-- batch), encode the non-NULL sources in one batched call, write the
	-- embeddings (and, in a refresh, NULL where the source is NULL), and return
	-- the batch's last key.  Two forms: the first batch of a new run starts at
	-- the first key.
	-- A third form encodes the one row whose key is $1: when a batch fails
	-- and on_error is ignore, its rows are gone through one by one, each
	-- locked first (next_sql) so that the row skipped is the one that failed.
	FOREACH key_cond IN ARRAY ARRAY['true',
		format('t.%I > $1::%s', key_att.attname, format_type(key_att.atttypid, NULL)),
		format('t.%I = $1::%s', key_att.attname, format_type(key_att.atttypid, NULL))] LOOP
		batch_sql := array_append(batch_sql, format($q$
			WITH b0 AS (
				SELECT t.%1$I AS k, t.%2$I%3$s AS s FROM %4$s t
				WHERE %5$s %6$s
				ORDER BY t.%1$I LIMIT $2
				FOR NO KEY UPDATE OF t),
			b1 AS (
				SELECT b0.k, b0.s, sum(coalesce(octet_length(b0.s), 0))
					OVER (ORDER BY b0.k ROWS UNBOUNDED PRECEDING) - coalesce(octet_length(b0.s), 0) AS before
				FROM b0),
			b AS (
				SELECT array_agg(b1.k ORDER BY b1.k) FILTER (WHERE b1.s IS NOT NULL) AS keys,
					array_agg(b1.s ORDER BY b1.k) FILTER (WHERE b1.s IS NOT NULL) AS sources,
					array_agg(b1.k) FILTER (WHERE b1.s IS NULL) AS null_keys,
					(array_agg(b1.k ORDER BY b1.k DESC))[1]::text AS last_key,
					count(*) AS n
				FROM b1 WHERE b1.before < $3),
			e AS (
				SELECT u.k, u.emb FROM b, unnest(b.keys, %7$s) AS u(k, emb)),
			set_embedding AS (
				UPDATE %4$s t SET %8$I = e.emb FROM e WHERE t.%1$I = e.k RETURNING 1),
			set_null AS (
				UPDATE %4$s t SET %8$I = NULL FROM b
				WHERE %9$s AND t.%1$I = ANY (b.null_keys) AND t.%8$I IS NOT NULL RETURNING 1)
			SELECT b.last_key, b.n FROM b$q$,
			key_att.attname, source_column, CASE WHEN src_is_image THEN '' ELSE '::text' END, relation,
			key_cond, CASE WHEN refresh THEN '' ELSE format('AND t.%I IS NULL', target_column) END,
			encoder, target_column, CASE WHEN refresh THEN 'true' ELSE 'false' END));
		next_sql := array_append(next_sql, format($q$
			SELECT t.%1$I::text FROM %2$s t WHERE %3$s %4$s ORDER BY t.%1$I LIMIT 1 FOR NO KEY UPDATE OF t$q$,
			key_att.attname, relation, key_cond,
			CASE WHEN refresh THEN '' ELSE format('AND t.%I IS NULL', target_column) END));
	END LOOP;

	started := clock_timestamp();
	LOOP
		IF one_by_one > 0 THEN
			-- the next row, locked until this row's COMMIT
			EXECUTE next_sql[CASE WHEN start_key IS NULL THEN 1 ELSE 2 END] INTO row_key USING start_key;
			IF row_key IS NULL THEN
				EXIT;
			END IF;
		END IF;
		BEGIN
			IF one_by_one > 0 THEN
				EXECUTE batch_sql[3] INTO batch_last, batch_rows USING row_key, 1, batch_bytes;
			ELSE
				EXECUTE batch_sql[CASE WHEN start_key IS NULL THEN 1 ELSE 2 END]
					INTO batch_last, batch_rows USING start_key, batch_size, batch_bytes;
			END IF;
			IF batch_rows > 0 THEN
				done := done + batch_rows;
				start_key := batch_last;
				EXECUTE format($q$UPDATE %s SET rows_done = $2, last_key = $3, updated_at = clock_timestamp()
					WHERE run_id = $1$q$, runs)
					USING run, done, start_key;
			END IF;
		EXCEPTION WHEN OTHERS OR query_canceled THEN
			GET STACKED DIAGNOSTICS err_state = RETURNED_SQLSTATE, err_message = MESSAGE_TEXT,
				err_detail = PG_EXCEPTION_DETAIL, err_hint = PG_EXCEPTION_HINT;
			failed := true;
		END;
		IF failed AND ignore_errors AND err_state IN ('22P02', '54000', '0A000') THEN
			failed := false;
			IF one_by_one = 0 THEN
				-- a row of this batch cannot be encoded: go through its rows one at a time
				one_by_one := batch_size;
				CONTINUE;
			END IF;
			-- this row is the one: leave it without an embedding (a refresh
			-- clears the one it had, which no longer matches the source or model)
			IF refresh THEN
				EXECUTE format('UPDATE %s t SET %I = NULL WHERE t.%I = $1::%s AND t.%I IS NOT NULL',
					relation, target_column, key_att.attname, format_type(key_att.atttypid, NULL),
					target_column) USING row_key;
			END IF;
			skipped := skipped + 1;
			done := done + 1;
			start_key := row_key;
			batch_rows := 1;
			EXECUTE format($q$UPDATE %s SET rows_done = $2, rows_skipped = $3, last_key = $4,
				updated_at = clock_timestamp() WHERE run_id = $1$q$, runs)
				USING run, done, skipped, start_key;
			IF skipped < 10 THEN
				RAISE WARNING '%: skipped the row with % = %: %', me, key_att.attname, row_key, err_message
					USING DETAIL = format('SQLSTATE %s.', err_state);
			ELSIF skipped = 10 THEN
				RAISE WARNING '%: skipped the row with % = %: %', me, key_att.attname, row_key, err_message
					USING DETAIL = format('SQLSTATE %s.', err_state),
						HINT = 'Further skipped rows are only counted (rows_skipped in crossmodal_embed_progress).';
			END IF;
		END IF;
		IF failed THEN
			EXECUTE format($q$UPDATE %s SET state = $2, error = $3, finished_at = clock_timestamp(),
				updated_at = clock_timestamp() WHERE run_id = $1$q$, runs)
				USING run, CASE WHEN err_state = '57014' THEN 'cancelled' ELSE 'failed' END,
					format('%s: %s', err_state, err_message);
			COMMIT;
			RAISE EXCEPTION USING ERRCODE = err_state, MESSAGE = err_message,
				DETAIL = format('%sRun %s had done and committed %s of %s rows; the failing batch began %s.',
					coalesce(nullif(err_detail, '') || E'\n', ''), run, done, total,
					CASE WHEN start_key IS NULL THEN 'at the first key'
						ELSE format('after %I = %s', key_att.attname, start_key) END),
				HINT = coalesce(nullif(err_hint, ''),
					'Remove the cause and make the same call again: it goes on where this run stopped.');
		END IF;
		EXIT WHEN batch_rows = 0;
		IF one_by_one > 0 THEN
			one_by_one := one_by_one - 1;
		END IF;
		COMMIT;

		IF last_report IS NULL OR clock_timestamp() - last_report >= interval '10 seconds' THEN
			last_report := clock_timestamp();
			rate := done / greatest(extract(epoch FROM last_report - started), 1e-3);
			RAISE NOTICE '%: % of % rows (%), % rows/s, about % left', me, done, total,
				round(100.0 * least(done, total) / greatest(total, 1), 1) || '%', round(rate::numeric, 1),
				date_trunc('second', make_interval(secs => greatest(total - done, 0) / rate));
		END IF;
	END LOOP;

	EXECUTE format($q$UPDATE %s SET state = 'finished', finished_at = clock_timestamp(),
		updated_at = clock_timestamp() WHERE run_id = $1$q$, runs)
		USING run;
	COMMIT;
	RAISE NOTICE '%: run % finished: % rows in %', me, run, done,
		date_trunc('second', clock_timestamp() - started)::text
		|| CASE WHEN skipped > 0 THEN format(', %s skipped (left without an embedding)', skipped) ELSE '' END;
END
$procedure$;
COMMENT ON PROCEDURE crossmodal_embed_column(regclass, text, text, text, integer, boolean, text, boolean, text) IS
	'fills (or with refresh, recomputes) an embedding column from a text or bytea column in batches, a commit per batch; with on_error => ignore, skips rows it cannot encode; progress in crossmodal_embed_progress';
