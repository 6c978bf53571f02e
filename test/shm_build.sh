#!/usr/bin/env bash
# A parallel crossmodal_hnsw build on a server whose /dev/shm is small, as
# in a container started without --shm-size (Docker gives 64 MB).  A graph
# that does not fit there must still build: serially, in local memory, with a
# NOTICE that says why; one that fits must still get its workers, and one
# that fits only without the int8 codes a float4 build searches on gets its
# workers and goes without the codes.
#
# Needs root: test/run.sh runs it as `unshare --mount --propagation private
# test/shm_build.sh`, and it mounts a 32 MB tmpfs over /dev/shm inside that
# private mount namespace only.  The cluster runs as the postgres user and
# inherits the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/cluster.sh

SHM_MB=32
if [ "$(id -u)" != 0 ]; then
	echo "shm_build.sh: needs root (run: unshare --mount --propagation private $0)" >&2
	exit 2
fi
# Refuse to shrink the machine's own /dev/shm: only inside a new namespace.
if [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/1/ns/mnt)" ]; then
	echo "shm_build.sh: run it inside a private mount namespace (unshare --mount)" >&2
	exit 2
fi
mount -t tmpfs -o size=${SHM_MB}m,mode=1777 tmpfs /dev/shm

cluster_start 54341 "max_worker_processes = 8" "max_parallel_workers = 4" \
	"max_parallel_maintenance_workers = 2" "maintenance_work_mem = 512MB" \
	"shared_buffers = 64MB"

fails=0
check() {	# check NAME DETAIL COMMAND...: the command's status is the result
	local name=$1 detail=$2; shift 2
	if "$@"; then echo "ok - $name"; else echo "not ok - $name: $detail"; fails=$((fails + 1)); fi
}

psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION crossmodal;
-- 40,000 x 128 (a graph of about 54 MB), 25,500 x 128 (35 MB on int8
-- codes, 31 MB without) and 5,000 x 128 (about 8 MB)
CREATE TABLE big (id int PRIMARY KEY, e embedding(128));
INSERT INTO big
SELECT g, array_agg(sin(g * 0.37 + d * 1.91 + (g % 97) * d)::real ORDER BY d)::embedding
FROM generate_series(1, 40000) g, generate_series(1, 128) d GROUP BY g;
CREATE TABLE mid AS SELECT * FROM big WHERE id <= 25500;
CREATE TABLE small AS SELECT * FROM big WHERE id <= 5000;
ALTER TABLE big SET (parallel_workers = 2);
ALTER TABLE mid SET (parallel_workers = 2);
ALTER TABLE small SET (parallel_workers = 2);
ANALYZE big, mid, small;
SQL

free_mb=$(df -m --output=avail /dev/shm | tail -1 | tr -d ' ')
echo "# /dev/shm: ${SHM_MB} MB, ${free_mb} MB free"

# The large graph: serial, with the NOTICE, and a complete index.
status=0
out=$(psql -X -v ON_ERROR_STOP=1 -c "SET client_min_messages = debug1" \
	-c "CREATE INDEX big_e ON big USING crossmodal_hnsw (e embedding_l2_ops)" 2>&1) || status=$?
check "a graph larger than /dev/shm builds" "$out" [ "$status" = 0 ]
check "the NOTICE says why the build is serial" "$out" grep -q \
	"NOTICE:  crossmodal_hnsw build runs without parallel workers: its graph needs [0-9]* MB of shared memory and /dev/shm has [0-9]* MB free" <<<"$out"
check "no worker was launched for it" "$out" bash -c '! grep -q "workers launched" <<<"$1"' _ "$out"
check "its graph (in local memory) was searched on int8 codes" "$out" grep -q "the graph was searched on int8 codes" <<<"$out"
problems=$(psql -X -At -c "SELECT count(*) FROM crossmodal_hnsw_check('big_e', true)" 2>&1 || true)
check "the index is in good order with every row in it" "$problems" [ "$problems" = 0 ]
# Each of 50 rows, looked up through the index, finds itself first.
found=$(psql -X -q -At <<'SQL'
SET enable_seqscan = off;
SELECT count(*) FROM generate_series(1, 40000, 800) q
WHERE (SELECT id FROM big ORDER BY e <-> (SELECT e FROM big WHERE id = q) LIMIT 1) = q;
SQL
) || true
check "50 of 50 rows found through the index" "$found found" [ "$found" = 50 ]
plan=$(psql -X -q -At -c "SET enable_seqscan = off" \
	-c "EXPLAIN (COSTS off) SELECT id FROM big ORDER BY e <-> (SELECT e FROM big WHERE id = 1) LIMIT 1" 2>&1 || true)
check "through the index indeed" "$plan" grep -q "Index Scan using big_e" <<<"$plan"

# build_with_workers TABLE CODES WHAT: a graph that fits /dev/shm gets its
# workers, no NOTICE, the codes named, and an index in good order.
build_with_workers() {
	local table=$1 codes=$2 what=$3 status=0 out problems
	out=$(psql -X -v ON_ERROR_STOP=1 -c "SET client_min_messages = debug1" \
		-c "CREATE INDEX ${table}_e ON $table USING crossmodal_hnsw (e embedding_l2_ops)" 2>&1) || status=$?
	check "$what builds" "$out" [ "$status" = 0 ]
	check "with its workers" "$out" grep -q "crossmodal_hnsw parallel build: [12] of 2 workers launched" <<<"$out"
	check "on $codes codes" "$out" grep -q "the graph was searched on $codes codes" <<<"$out"
	check "and no NOTICE" "$out" bash -c '! grep -q "without parallel workers" <<<"$1"' _ "$out"
	problems=$(psql -X -At -c "SELECT count(*) FROM crossmodal_hnsw_check('${table}_e', true)" 2>&1 || true)
	check "that index is in good order" "$problems" [ "$problems" = 0 ]
}
# The middle one fits only without the int8 codes; the small one with them.
build_with_workers mid float4 "a graph that fits /dev/shm only on float4 codes"
build_with_workers small int8 "a graph that fits /dev/shm"

echo "# $fails failed"
[ "$fails" = 0 ]
