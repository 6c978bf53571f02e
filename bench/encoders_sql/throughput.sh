#!/bin/bash
# throughput.sh: milliseconds per input of the SQL encoders, one call per row
# against the batch forms, on one backend with crossmodal.threads = 1 and 2.
# Starts and stops its own throwaway cluster.
#
# usage (as root, after `make install`): bench/encoders_sql/throughput.sh
#   TEXTS=128 IMAGES=32 PORT=55534 MODEL_DIR=DIR (default: the random ViT-B/32-shaped model)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TEXTS="${TEXTS:-128}"
IMAGES="${IMAGES:-32}"
PORT="${PORT:-55534}"
MODEL_DIR="${MODEL_DIR:-$ROOT/bench/encoders/work/clip-vit-b32-random}"
cd "$ROOT"
[ -f "$MODEL_DIR/model.safetensors" ] || nice /usr/bin/python3 bench/encoders/make_vitb32_random.py "$MODEL_DIR"
M="$(basename "$MODEL_DIR")"
IMAGE="$ROOT/test/golden/images/landscape_320x240.png"

. tools/cluster.sh
cluster_start "$PORT" "crossmodal.model_path = '$(dirname "$MODEL_DIR")'"
nice psql -XAtq <<SQL
CREATE EXTENSION crossmodal;
CREATE TABLE t AS SELECT g, 'a photo of thing number ' || g AS caption FROM generate_series(1, $TEXTS) g;
CREATE TABLE i AS SELECT g, pg_read_binary_file('$IMAGE') AS data FROM generate_series(1, $IMAGES) g;
SELECT dims(encode_text('$M', 'warm up')), dims(encode_image('$M', (SELECT data FROM i LIMIT 1)));
CREATE FUNCTION ms_per_input(query text, n int) RETURNS numeric LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE query;
	RETURN round((extract(epoch FROM clock_timestamp() - t0) * 1000 / n)::numeric, 2);
END \$\$;
\echo threads | texts per row | texts batch | images per row | images batch   (ms per input; $TEXTS texts, $IMAGES images)
SELECT string_agg(format('%s | %s | %s | %s | %s', th,
	ms_per_input(format('SET crossmodal.threads = %s; SELECT count(encode_text(%L, caption)) FROM t', th, '$M'), $TEXTS),
	ms_per_input(format('SET crossmodal.threads = %s; SELECT cardinality(encode_texts(%L, array_agg(caption))) FROM t', th, '$M'), $TEXTS),
	ms_per_input(format('SET crossmodal.threads = %s; SELECT count(encode_image(%L, data)) FROM i', th, '$M'), $IMAGES),
	ms_per_input(format('SET crossmodal.threads = %s; SELECT cardinality(encode_images(%L, array_agg(data))) FROM i', th, '$M'), $IMAGES)),
	E'\n' ORDER BY th)
FROM unnest(ARRAY[1, 2]) th;
SQL
