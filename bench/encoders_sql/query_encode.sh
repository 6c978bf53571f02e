#!/bin/bash
# query_encode.sh: what a query encoding its own input costs when the
# encoder call is evaluated once per row (no index: a sequential scan and a
# sort), for each way of writing it.  Prints, per query, the median
# execution time of RUNS runs and the number of encodes it made (counted
# from the DEBUG1 line each runtime call logs).  Starts and stops its own
# throwaway cluster; takes about a minute with the defaults.
#
# usage (as root, after `make install`): bench/encoders_sql/query_encode.sh
#   ROWS=5000 RUNS=5 PORT=55534
#   MODEL=NAME   a model on the default model path (default: the shipped one)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROWS="${ROWS:-5000}"
RUNS="${RUNS:-5}"
PORT="${PORT:-55534}"
MODEL="${MODEL:-emoji-clip-en-ko}"
IMAGE="$ROOT/test/golden/images/landscape_320x240.png"
cd "$ROOT"

. tools/cluster.sh
cluster_start "$PORT" "shared_buffers = 128MB" "max_parallel_workers_per_gather = 0" \
	"jit = off" "crossmodal.default_model = '$MODEL'"
chmod o+r "$IMAGE" 2>/dev/null || true
q() { as_postgres "$PG_BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 "$@"; }

q -c "CREATE EXTENSION crossmodal" >/dev/null
dims=$(q -c "SELECT dims(encode_text('$MODEL', 'x'))")
q -c "CREATE TABLE items AS
      SELECT g AS id, ARRAY(SELECT sin(g * 7 + i) FROM generate_series(1, $dims) i)::embedding AS e
      FROM generate_series(1, $ROWS) g; ANALYZE items;" >/dev/null
q -c "CREATE TABLE img AS SELECT pg_read_binary_file('$IMAGE') AS data" >/dev/null

# name|setup|query (setup runs in the same session before each timed run)
queries=(
	"text, default model (STABLE)||SELECT id FROM items ORDER BY e <=> encode_text('cow') LIMIT 3"
	"text, named model (IMMUTABLE, folded by the planner)||SELECT id FROM items ORDER BY e <=> encode_text('$MODEL', 'cow') LIMIT 3"
	"text, scalar subquery (an InitPlan)||SELECT id FROM items ORDER BY e <=> (SELECT encode_text('cow')) LIMIT 3"
	"text, filter then sort||SELECT id FROM items WHERE id % 10 = 0 ORDER BY e <=> encode_text('cow') LIMIT 3"
	"text, distance threshold||SELECT count(*) FROM items WHERE e <=> encode_text('cow') < 0.9"
	"text, parameter of a generic plan|SET plan_cache_mode = force_generic_plan; PREPARE p(text) AS SELECT id FROM items ORDER BY e <=> encode_text('$MODEL', \$1) LIMIT 3;|EXECUTE p('cow')"
	"image, default model, bytes from a table||SELECT id FROM items ORDER BY e <=> encode_image((SELECT data FROM img)) LIMIT 3"
	"image, parameter of a generic plan|SET plan_cache_mode = force_generic_plan; PREPARE p(bytea) AS SELECT id FROM items ORDER BY e <=> encode_image('$MODEL', \$1) LIMIT 3;|EXECUTE p(pg_read_binary_file('$IMAGE'))"
)

echo "model $MODEL ($dims dimensions), $ROWS rows, median of $RUNS runs"
uptime
printf '%-52s %12s %8s\n' query "ms" encodes
for entry in "${queries[@]}"; do
	name=${entry%%|*}
	rest=${entry#*|}
	setup=${rest%%|*}
	query=${rest#*|}
	times=()
	encodes=0
	for run in $(seq 1 "$RUNS"); do
		# The model loads (and is used once) before the count starts.
		out=$(q -c "SELECT dims(encode_text('$MODEL', 'warm up'))" -c "SET client_min_messages = debug1" \
			-c "SELECT 1 ${setup:+; $setup}" -c '\timing on' -c "$query" 2>&1)
		t=$(echo "$out" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
		times+=("$t")
		encodes=$(echo "$out" | grep -c 'crossmodal: encoding' || true)
	done
	median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	printf '%-52s %12.1f %8d\n' "$name" "$median" "$encodes"
done
uptime
