#!/usr/bin/env bash
# The soak test (test/t/093_soak.pl) for N minutes of workload: pgbench
# clients inserting rows with a generated encode_image column, querying,
# updating and deleting against a primary with a streaming replica, with
# autovacuum, a checkpoint every 3 s, and the postmaster killed with SIGKILL
# every 4..10 s; after each restart every committed row, every row through
# each index, crossmodal_hnsw_check and the replica's answers are checked.
# Prints rows written, crashes survived, queries run and anything lost, with
# the machine's load before and after.
#
# Usage: bench/soak/run.sh [MINUTES]    (default 10; SOAK_SECONDS=N instead
#        for seconds; the checks after each restart add to the run time)
# Runs against the PostgreSQL whose pg_config is first on PATH, with the
# extension installed in it (make install); as root it runs the clusters as
# the postgres user, as test/run.sh does.  SOAK_SEED=N repeats a run's kills.
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=${1:-10}
seconds=${SOAK_SECONDS:-$((minutes * 60))}
report=$(mktemp /tmp/crossmodal-soak-report.XXXXXX)
WORK=$(mktemp -d /tmp/crossmodal-soak.XXXXXX)
cp -r Makefile crossmodal.control extension sql test "$WORK"/
mkdir -p "$WORK/encoders" "$WORK/tools"
cp tools/private-pg.sh "$WORK/tools/"
run() { "$@"; }
if [ "$(id -u)" = 0 ]; then
	chown -R postgres: "$WORK"; chown postgres: "$report"
	run() { runuser -u postgres -- "$@"; }
fi
echo "soak: $seconds s of workload, PostgreSQL $(pg_config --version), load before: $(uptime)"
start=$SECONDS
status=0
run env SOAK_SECONDS=$seconds SOAK_REPORT="$report" ${SOAK_SEED:+SOAK_SEED=$SOAK_SEED} \
	make -s -C "$WORK" prove_installcheck PROVE_TESTS=test/t/093_soak.pl PROVE_FLAGS=--verbose \
	>"$WORK/prove.log" 2>&1 || status=$?
grep -E '^(not ok|# +Failed)' "$WORK/prove.log" | head -40 || true
cat "$report"
echo "soak: $((SECONDS - start)) s in all; load after: $(uptime)"
if [ "$status" -ne 0 ]; then
	echo "soak: FAILED; the log: $WORK/prove.log, the servers' logs: $WORK/tmp_check/log" >&2
	exit 1
fi
rm -rf "$WORK" "$report"
