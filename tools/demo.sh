#!/usr/bin/env bash
# The README's first command: installs what it needs, builds and installs the
# extension with its default model, starts a throwaway cluster, loads sample
# emoji images the model never trained on, queries them by text in English and
# Korean through an HNSW index, prints the hits and zero-shot labels for one
# image, then stops the cluster.
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
cp "$SAMPLES"/*.png "$SAMPLES/captions.tsv" "$CLUSTER_DIR/samples/"
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

\echo 'Query by text (English and Korean), top 3 images by cosine distance:'
SELECT q.query, h.rank, h.file, h.caption_en, h.distance
FROM unnest(ARRAY['cow', '젖소', 'raccoon', '너구리', 'tornado', '얼음',
				  'a laughing face', 'eight-thirty']) WITH ORDINALITY AS q(query, n)
CROSS JOIN LATERAL (
	SELECT row_number() OVER () AS rank, file, caption_en,
		   round((emb <=> encode_text(q.query))::numeric, 3) AS distance
	FROM (SELECT * FROM emoji ORDER BY emb <=> encode_text(q.query) LIMIT 3) top
) h
ORDER BY q.n, h.rank;

\echo 'Zero-shot labels for fluent_1f404.png (a cow):'
SELECT label, round(score::numeric, 3) AS score
FROM image_labels((SELECT data FROM emoji WHERE file = 'fluent_1f404.png'),
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
