#!/usr/bin/env bash
# Benchmark: exact top-10 by cosine distance over 100,000 random unit embeddings
# of 512 dimensions; ms per query in one backend (max_parallel_workers_per_gather
# = 0) and with the planner's default choice, which is a parallel plan.  For
# comparison, the same rows with the column's storage set to EXTERNAL (what
# pgvector's type uses): values out of line, a small heap, and the plan that follows.
# Usage (as root on Debian 12): bench/exact_scan.sh [ROWS] [SECONDS_PER_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-100000}
SECONDS_PER_RUN=${2:-15}

tools/install-deps.sh --test		# python3-numpy for the data generator
make -s -j2 && make -s install

. tools/cluster.sh
# Planner settings are PostgreSQL's defaults; shared_buffers is raised so the
# 260 MB heap is cached as it would be on a real server.
cluster_start 54337 "shared_buffers = 1GB"
psql() { as_postgres "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
pgbench() { as_postgres "$PG_BINDIR/pgbench" "$@"; }

psql -c "CREATE EXTENSION crossmodal"
psql -c "CREATE TABLE items (id bigserial PRIMARY KEY, emb embedding(512))"
psql -c "CREATE TABLE items_external (id bigserial PRIMARY KEY, emb embedding(512))"
psql -c "ALTER TABLE items_external ALTER COLUMN emb SET STORAGE EXTERNAL"
echo "loading $ROWS random unit embeddings of 512 dimensions..."
bench/gen_embeddings.py "$ROWS" 512 | psql -c "COPY items (emb) FROM STDIN (FORMAT binary)"
psql -c "INSERT INTO items_external SELECT * FROM items"
psql -c "VACUUM ANALYZE items" -c "VACUUM ANALYZE items_external"

psql <<'SQL'
SELECT relname AS "table",
	   pg_relation_size(oid) / 8192 AS heap_pages,
	   pg_size_pretty(pg_relation_size(oid)) AS heap,
	   pg_size_pretty(pg_relation_size(reltoastrelid)) AS toast
FROM pg_class WHERE relname IN ('items', 'items_external') ORDER BY 1;
SQL

QUERY=$(mktemp /tmp/crossmodal-bench.XXXXXX.sql)
chmod 644 "$QUERY"
run() {	# run LABEL TABLE [PGOPTIONS]: pgbench one client for SECONDS_PER_RUN
	local label=$1 table=$2 options=${3:-}
	cat >"$QUERY" <<SQL
\set id random(1, $ROWS)
SELECT id FROM $table ORDER BY emb <=> (SELECT emb FROM $table WHERE id = :id) LIMIT 10;
SQL
	echo "--- $label"
	PGOPTIONS="$options" psql -c "EXPLAIN (COSTS OFF) SELECT id FROM $table ORDER BY emb <=> (SELECT emb FROM $table WHERE id = 1) LIMIT 10"
	PGOPTIONS="$options" pgbench -n -c 1 -T "$SECONDS_PER_RUN" -f "$QUERY" postgres 2>&1 \
		| grep -E 'number of transactions actually processed|latency average'
}
run "embedding (storage MAIN, inline): default plan" items
run "embedding (storage MAIN, inline): one backend" items "-c max_parallel_workers_per_gather=0"
run "same rows with storage EXTERNAL (pgvector's choice): default plan" items_external
run "same rows with storage EXTERNAL: parallel forced (min_parallel_table_scan_size=0)" items_external "-c min_parallel_table_scan_size=0"
rm -f "$QUERY"
cluster_stop
