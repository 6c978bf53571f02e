#!/bin/bash
# run.sh: crossmodal on Citus against one node, on this machine.  Starts its
# own throwaway coordinator and two workers (TCP on 127.0.0.1, ports PORT to
# PORT+2, trust authentication, as the postgres user) and prints:
#   1. embeddings per second of a bulk INSERT ... SELECT of images into a table
#      with a generated encode_image(...) column: one node (a plain table),
#      a distributed table of 8 shards on 1 worker, then on 2 workers; both
#      with the images on the coordinator (Citus sends the rows to the shards)
#      and with the images already distributed (the INSERT ... SELECT runs on
#      each shard);
#   2. top-10 latency and recall@10 on ROWS x 512 vectors (bench/hnsw_bench.c's
#      Gaussian mixture, its in-distribution and cross-modal query sets) in one
#      table against a distributed table of 8 shards on 2 workers, per
#      ef_search;
#   3. top-10 latency of a query text over a distributed table of CAPTIONS
#      captions, by how the text is written: the named model, the default
#      model bare (crossmodal.encode_once on: encoded on the coordinator; off:
#      on every shard), and as a scalar subquery;
# and the machine load (uptime) before and after.
#
# Citus is not in Debian: build Citus 13.2 (the last line for PostgreSQL 15)
# from its sources against this PostgreSQL and `make install` it, so that
# citus.so is in `pg_config --pkglibdir` (README, Scaling out).  Install
# crossmodal there too (`make install`).  Then, as root:
#   bench/citus/run.sh
#   IMAGES=240 ROWS=100000 QUERIES=200 EF=10,20,40,80,160 CAPTIONS=1000 TEXTS=20 PORT=56150
#   MODEL_DIR=DIR   the model that encodes the images (default: the random
#                   ViT-B/32-shaped model of bench/encoders, generated when
#                   missing); MODEL_DIR=default uses the shipped emoji model
# A small check: IMAGES=30 ROWS=5000 QUERIES=20 bench/citus/run.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
IMAGES="${IMAGES:-240}"
ROWS="${ROWS:-100000}"
QUERIES="${QUERIES:-200}"
EF="${EF:-10,20,40,80,160}"
CAPTIONS="${CAPTIONS:-1000}"
TEXTS="${TEXTS:-20}"
PORT="${PORT:-56150}"
MODEL_DIR="${MODEL_DIR:-$ROOT/bench/encoders/work/clip-vit-b32-random}"
cd "$ROOT"

BINDIR="$(pg_config --bindir)"
PKGLIBDIR="$(pg_config --pkglibdir)"
if [ ! -e "$PKGLIBDIR/citus.so" ]; then
	echo "run.sh: Citus is not installed in $PKGLIBDIR (build Citus 13.2 for this PostgreSQL and install it)" >&2
	exit 1
fi
[ -e "$PKGLIBDIR/crossmodal.so" ] || { echo "run.sh: crossmodal is not installed (make install)" >&2; exit 1; }

start=$SECONDS
echo "== load before: $(uptime)"
echo "== $("$BINDIR/postgres" --version), $(nproc) CPUs"

if [ "$MODEL_DIR" = default ]; then
	MODEL_SETTING=""
	MODEL="emoji-clip-en-ko"
else
	if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
		echo "== generating $MODEL_DIR"
		nice /usr/bin/python3 bench/encoders/make_vitb32_random.py "$MODEL_DIR" >/dev/null
	fi
	MODEL_SETTING="crossmodal.model_path = '$(dirname "$MODEL_DIR")'"
	MODEL="$(basename "$MODEL_DIR")"
fi

WORK=$(mktemp -d /tmp/crossmodal-citus-bench.XXXXXX)
chown postgres: "$WORK"
as_postgres() { runuser -u postgres -- "$@"; }
NODES="coordinator worker1 worker2"
cleanup() {
	for n in $NODES; do
		[ -d "$WORK/$n" ] && as_postgres "$BINDIR/pg_ctl" -D "$WORK/$n" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

port=$PORT
for n in $NODES; do
	as_postgres "$BINDIR/initdb" -D "$WORK/$n" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
	cat >>"$WORK/$n/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$WORK'
shared_preload_libraries = 'citus,crossmodal'
shared_buffers = 512MB
maintenance_work_mem = 1GB
max_connections = 100
fsync = off
synchronous_commit = off
$MODEL_SETTING
crossmodal.default_model = '$MODEL'
EOF
	as_postgres "$BINDIR/pg_ctl" -D "$WORK/$n" -l "$WORK/$n.log" -w start >/dev/null
	port=$((port + 1))
done
psql_on() { local p=$1; shift; "$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U postgres -d postgres "$@"; }
coord() { psql_on "$PORT" "$@"; }
for p in $PORT $((PORT + 1)) $((PORT + 2)); do psql_on "$p" -c "CREATE EXTENSION citus" >/dev/null; done
coord -c "SELECT citus_set_coordinator_host('127.0.0.1', $PORT)" -c "SELECT citus_add_node('127.0.0.1', $((PORT + 1)))" >/dev/null
coord -c "CREATE EXTENSION crossmodal" >/dev/null
echo "== model $MODEL: $(coord -Atc "SELECT dimensions || ' dimensions, ' || image_size || ' px, ' || parameters || ' parameters' FROM crossmodal_models() WHERE name = '$MODEL'")"

# 1. Embeddings per second.  IMAGES distinct PNGs (the shipped samples, each
# turned by a different angle, so that no two inputs are the same bytes).
mkdir "$WORK/images"
/usr/bin/python3 - "$ROOT/models/emoji-clip-en-ko/samples" "$WORK/images" "$IMAGES" <<'EOF'
import glob, os, sys
from PIL import Image
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
samples = [Image.open(p).convert("RGBA") for p in sorted(glob.glob(os.path.join(src, "*.png")))]
for i in range(n):
    image = samples[i % len(samples)].rotate(i // len(samples) * 7 % 360, resample=Image.BICUBIC)
    image.save(os.path.join(out, "%d.png" % (i + 1)))
EOF
chown -R postgres: "$WORK/images"
coord -c "CREATE TABLE bench_images AS SELECT i AS id, pg_read_binary_file('$WORK/images/' || i || '.png') AS data FROM generate_series(1, $IMAGES) i"

table_ddl() {	# table_ddl NAME: the table with the generated embedding column
	echo "CREATE TABLE $1 (id int PRIMARY KEY, data bytea, emb embedding GENERATED ALWAYS AS (encode_image('$MODEL', data)) STORED)"
}
# rate LABEL SQL: runs SQL (an INSERT ... SELECT of the IMAGES images) and prints images/s
rate() {
	local t0 t1
	t0=$(date +%s.%N)
	coord -c "$2" >/dev/null
	t1=$(date +%s.%N)
	awk -v l="$1" -v n="$IMAGES" -v a="$t0" -v b="$t1" 'BEGIN { printf "%-68s %7.1f s %8.1f embeddings/s\n", l, b - a, n / (b - a) }'
}
# Warm the page cache and the coordinator's model once.
coord -c "SELECT count(encode_image('$MODEL', data)) FROM bench_images WHERE id <= 2" >/dev/null
echo
echo "== 1. bulk INSERT ... SELECT of $IMAGES images into a table with a generated encode_image column"
coord -c "$(table_ddl photos_single)"
rate "one node (a plain table, one backend)" "INSERT INTO photos_single (id, data) SELECT id, data FROM bench_images"
for workers in 1 2; do
	if [ "$workers" = 2 ]; then coord -c "SELECT citus_add_node('127.0.0.1', $((PORT + 2)))" >/dev/null; fi
	# (colocate_with none: a new group, whose shards spread over the workers present)
	coord -c "$(table_ddl photos_w$workers)" \
		-c "SELECT create_distributed_table('photos_w$workers', 'id', shard_count => 8, colocate_with => 'none')" >/dev/null
	rate "Citus, $workers worker(s), 8 shards, images on the coordinator" \
		"INSERT INTO photos_w$workers (id, data) SELECT id, data FROM bench_images"
	coord -c "CREATE TABLE raw_w$workers (id int PRIMARY KEY, data bytea)" \
		-c "SELECT create_distributed_table('raw_w$workers', 'id', colocate_with => 'photos_w$workers')" \
		-c "INSERT INTO raw_w$workers SELECT id, data FROM bench_images" \
		-c "$(table_ddl photos_p$workers)" \
		-c "SELECT create_distributed_table('photos_p$workers', 'id', colocate_with => 'photos_w$workers')" >/dev/null
	rate "Citus, $workers worker(s), 8 shards, images distributed (pushed down)" \
		"INSERT INTO photos_p$workers (id, data) SELECT id, data FROM raw_w$workers"
done
for t in photos_w1 photos_w2; do
	echo "   $t shards per worker port: $(coord -Atc "SELECT string_agg(nodeport || ': ' || n, ', ' ORDER BY nodeport) FROM (SELECT nodeport, count(*) n FROM citus_shards WHERE table_name = '$t'::regclass GROUP BY 1) s")"
done
echo "   check: $(coord -Atc "SELECT count(*) FILTER (WHERE s.emb <=> d.emb < 1e-6) || ' of ' || count(*) || ' distributed embeddings equal the single node''s' FROM photos_single s JOIN photos_w2 d USING (id)")"

# 2. Top-10 latency and recall@10: one table against 8 shards on 2 workers.
echo
echo "== 2. top-10 over $ROWS x 512 vectors: one node, then 8 shards on 2 workers (one client, prepared statement)"
bench/hnsw_bench.sh build
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
hnsw() { bench/build/hnsw_bench --rows "$ROWS" --dims 512 --clusters 1000 --queries "$QUERIES" --ef "$EF" \
	--maintenance-work-mem 1GB "$@"; }
echo "-- one node (a plain table on the coordinator)"
hnsw --table topk_single
echo "-- Citus: 8 shards on 2 workers (ef_search per shard)"
hnsw --table topk_dist --distribute 8
coord -c "SET client_min_messages = warning" -c "DO \$\$ BEGIN EXECUTE format('ALTER DATABASE %I SET crossmodal.hnsw_ef_search = 40', current_database()); END \$\$" >/dev/null
q=$(coord -Atc "SELECT emb FROM topk_dist WHERE id = 1")
echo "   a shard's plan at ef_search 40: $(coord -Atc "EXPLAIN (COSTS OFF) SELECT id FROM topk_dist ORDER BY emb <=> '$q' LIMIT 10" | grep -o 'Index Scan using [a-z_0-9]*\|Seq Scan on [a-z_0-9]*' | head -1)"

# 3. The query text's forms.  Each form runs a warm-up query (it loads the
# model in the session's backends) and TEXTS queries of distinct texts in one
# session; psql's \timing of the TEXTS queries, mean and median.
echo
echo "== 3. top-10 of a query text over $CAPTIONS captions in 8 shards on 2 workers, by the form of the text (one client)"
coord -c "CREATE TABLE captions (id int PRIMARY KEY, caption text, emb embedding GENERATED ALWAYS AS (encode_text('$MODEL', caption)) STORED)" \
	-c "SELECT create_distributed_table('captions', 'id', shard_count => 8, colocate_with => 'none')" \
	-c "INSERT INTO captions (id, caption) SELECT g, 'a photo of thing number ' || g FROM generate_series(1, $CAPTIONS) g" \
	-c "CREATE INDEX ON captions USING crossmodal_hnsw (emb embedding_cosine_ops)" >/dev/null
forms=0
# form LABEL SETTING TEMPLATE: each @ of TEMPLATE becomes the quoted text
form() {
	local label=$1 setting=$2 template=$3 file="$WORK/form.sql" i q
	forms=$((forms + 1))
	{
		echo "SET crossmodal.encode_once = $setting;"
		for i in $(seq 0 "$TEXTS"); do
			[ "$i" = 1 ] && echo '\timing on'
			q="'a query text, form $forms, number $i'"
			echo "SELECT id FROM captions ORDER BY emb <=> ${template//@/$q} LIMIT 10;"
		done
	} >"$file"
	coord -f "$file" -o /dev/null | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | sort -n |
		awk -v l="$label" '{ t[NR] = $1; s += $1 } END { printf "%-62s %8.1f ms mean %8.1f ms median\n", l, s / NR, t[int((NR + 1) / 2)] }'
}
form "named model: encode_text('MODEL', text)" on "encode_text('$MODEL', @)"
form "default model, bare, encode_once on (coordinator encodes)" on "encode_text(@)"
form "default model, bare, encode_once off (every shard encodes)" off "encode_text(@)"
form "default model, scalar subquery (SELECT encode_text(text))" on "(SELECT encode_text(@))"

echo
echo "== load after: $(uptime)"
echo "== run time: $((SECONDS - start)) s"
