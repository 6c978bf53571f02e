#!/usr/bin/env bash
# The README's first command: installs what it needs, builds and installs the
# extension with its default model, starts a throwaway cluster, loads 30 sample
# pictures in a drawing style the model never trained on (Streamline Emojis) of
# things it knows, queries them by text in English and Korean through an HNSW
# index, prints where the right picture ranked and the top 3, and zero-shot
# labels for one picture, then stops the cluster.
# Usage (as root on Debian 12): tools/demo.sh [--keep]
#   --keep leaves the cluster running (with the demo's table) for the client
#   examples of examples/ and prints how to reach it and how to stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
case ${1:-} in
--keep) keep=true ;;
"") ;;
*) echo "usage: tools/demo.sh [--keep]" >&2; exit 2 ;;
esac

MODEL=emoji-clip-en-ko
SAMPLES=models/$MODEL/samples

tools/install-deps.sh
make -s -j2 && make -s install

. tools/cluster.sh
cluster_start 54338
psql() { as_postgres "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# The server reads the sample files itself (pg_read_binary_file), so they go
# where the postgres user can read them.
mkdir "$CLUSTER_DIR/samples"
cp "$SAMPLES"/*.png "$SAMPLES/captions.tsv" "$SAMPLES/queries.tsv" "$CLUSTER_DIR/samples/"
chown -R postgres: "$CLUSTER_DIR/samples"

psql -v samples="$CLUSTER_DIR/samples" <<'SQL'
CREATE EXTENSION crossmodal;

-- Each image is embedded by the server as it is stored (a generated column).
CREATE TABLE emoji (
	id bigserial PRIMARY KEY,
	file text NOT NULL,
	caption_en text,
	caption_ko text,
	data bytea NOT NULL,
	emb embedding GENERATED ALWAYS AS (encode_image('emoji-clip-en-ko', data)) STORED
);

CREATE TEMP TABLE captions (file text, english text, korean text, source text);
\set captions_file :samples '/captions.tsv'
COPY captions FROM :'captions_file' WITH (FORMAT csv, DELIMITER E'\t', HEADER true);

INSERT INTO emoji (file, caption_en, caption_ko, data)
SELECT file, english, korean, pg_read_binary_file(:'samples' || '/' || file)
FROM captions ORDER BY file;

CREATE INDEX ON emoji USING crossmodal_hnsw (emb embedding_cosine_ops);
ANALYZE emoji;

\echo
SELECT count(*) AS images, min(dims(emb)) AS dimensions FROM emoji;
SELECT name, dimensions, image_size, parameters, weight_dtype FROM crossmodal_models();

-- The demo's queries and the picture that answers each (samples/queries.tsv).
CREATE TEMP TABLE queries (n serial, query text, answer text);
\set queries_file :samples '/queries.tsv'
COPY queries (query, answer) FROM :'queries_file' WITH (FORMAT csv, DELIMITER E'\t', HEADER true);

\echo 'Query by text (English and Korean): where the right picture ranks among the 30, and the top 3'
\echo 'by cosine distance through the index:'
SELECT q.query, a.caption_en AS right_picture,
	   1 + (SELECT count(*) FROM emoji e WHERE (e.emb <=> t.v) < (a.emb <=> t.v)) AS its_rank,
	   (SELECT string_agg(caption_en, ' | ')
		FROM (SELECT caption_en FROM emoji ORDER BY emb <=> t.v LIMIT 3) top) AS top_3
FROM queries q
JOIN emoji a ON a.file = q.answer
CROSS JOIN LATERAL (SELECT encode_text(q.query) AS v) t
ORDER BY q.n;

\echo 'Zero-shot labels for the cow picture (streamline_1f404.png):'
SELECT label, round(score::numeric, 3) AS score
FROM image_labels((SELECT data FROM emoji WHERE file = 'streamline_1f404.png'),
				  ARRAY['cow', 'cat', 'car', 'tree', 'pizza', '젖소', '고양이']);
SQL
if $keep; then
	trap - EXIT
	echo
	echo "The cluster keeps running. To use it (e.g. with examples/python/search.py):"
	echo "  export PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE"
	echo "To stop and remove it:"
	echo "  runuser -u postgres -- $PG_BINDIR/pg_ctl -D $CLUSTER_DIR/data stop && rm -rf $CLUSTER_DIR"
	exit 0
fi
cluster_stop
echo "demo done: cluster stopped and removed."
