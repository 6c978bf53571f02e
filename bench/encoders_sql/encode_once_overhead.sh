#!/bin/bash
# encode_once_overhead.sh: what crossmodal.encode_once's planner hook costs
# the queries it does not rewrite.  Starts its own throwaway cluster with
# crossmodal in shared_preload_libraries; in one session, runs each query
# many times (its count times SCALE) through PL/pgSQL's EXECUTE (parsed and planned every time),
# with the setting on and off in alternation, ROUNDS rounds, and prints the
# backend's own CPU time (user + system, from /proc, so that other work on
# the machine disturbs it less than wall time) in microseconds per query,
# median of the rounds, and the machine load.  About 1 minute with the
# defaults.
#
# usage (as root, after `make install`): bench/encoders_sql/encode_once_overhead.sh
#   ROUNDS=5 SCALE=1 PORT=55535
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ROUNDS="${ROUNDS:-5}"
SCALE="${SCALE:-1}"
PORT="${PORT:-55535}"
TICK="$(getconf CLK_TCK)"
cd "$ROOT"

. tools/cluster.sh
cluster_start "$PORT" "shared_preload_libraries = 'crossmodal'" "jit = off"
q() { as_postgres "$PG_BINDIR/psql" -XAtq -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION crossmodal" \
	-c "CREATE TABLE items AS SELECT g AS id, 'caption ' || g AS caption FROM generate_series(1, 1000) g" \
	-c "ALTER TABLE items ADD PRIMARY KEY (id)" -c "ANALYZE items" >/dev/null

# name|count|query: a key lookup; a larger tree (30 function calls, a join,
# a correlated sub-select); counts of about a second of CPU each.  Quotes
# doubled: the query goes into EXECUTE '...'.
calls=$(for i in $(seq 1 10); do printf "lower(a.caption || ''%d''), length(b.caption) + %d, md5(a.caption || ''%d''), " "$i" "$i" "$i"; done)
queries=(
	"key lookup|100000|SELECT caption FROM items WHERE id = 17"
	"30 function calls, join, sub-select|5000|SELECT a.id, $calls (SELECT max(id) FROM items c WHERE c.id < a.id) FROM items a JOIN items b ON b.id = a.id + 1 WHERE a.id = 17"
)

echo "crossmodal preloaded; each query through EXECUTE, $ROUNDS rounds per setting, alternating (order too)"
echo "load before: $(uptime)"
printf '%-40s %8s %16s %16s\n' query count "us/query on" "us/query off"
for entry in "${queries[@]}"; do
	name=${entry%%|*}
	rest=${entry#*|}
	count=$((${rest%%|*} * SCALE))
	query=${rest#*|}
	{
		echo "CREATE FUNCTION pg_temp.cpu_ticks() RETURNS bigint LANGUAGE sql AS \$\$
			SELECT split_part(s, ' ', 14)::bigint + split_part(s, ' ', 15)::bigint
			FROM pg_read_file('/proc/' || pg_backend_pid() || '/stat') s \$\$;"
		echo "CREATE TEMP TABLE cpu (setting text, ticks bigint);"
		echo "DO \$\$ BEGIN FOR i IN 1..$((count / 10)) LOOP EXECUTE '$query'; END LOOP; END \$\$;   -- warm-up"
		for round in $(seq 1 "$ROUNDS"); do
			# (the order alternates too: on first in odd rounds, off first in even ones)
			order="on off"; [ $((round % 2)) = 0 ] && order="off on"
			for setting in $order; do
				echo "SET crossmodal.encode_once = $setting;"
				echo "DO \$\$ DECLARE t0 bigint := pg_temp.cpu_ticks(); BEGIN
					FOR i IN 1..$count LOOP EXECUTE '$query'; END LOOP;
					INSERT INTO cpu VALUES ('$setting', pg_temp.cpu_ticks() - t0); END \$\$;"
			done
		done
		echo "SELECT string_agg(round(1e6 * m / $TICK / $count, 2)::text, ' ' ORDER BY setting DESC)
			FROM (SELECT setting, percentile_disc(0.5) WITHIN GROUP (ORDER BY ticks) m FROM cpu GROUP BY 1) s;"
	} | q | awk -v n="$name" -v c="$count" '{ printf "%-40s %8d %16s %16s\n", n, c, $1, $2 }'
done
echo "load after: $(uptime)"
