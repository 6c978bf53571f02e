#!/usr/bin/env bash
# Runs every test of the project: the encoder runtime's unit tests (plain and
# under ASan+UBSan), a short run of each fuzzer, the extension's pg_regress
# suite and its TAP tests against a throwaway cluster.
# Usage (as root on Debian 12; installs what it needs): test/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-20}

tools/install-deps.sh --test
. tools/cluster.sh

passed=0; failed=0
stage() {	# stage NAME COMMAND...: run one stage, count it
	local name=$1; shift
	echo "=== $name"
	if "$@"; then passed=$((passed + 1)); echo "--- $name: ok"
	else failed=$((failed + 1)); echo "--- $name: FAILED"; fi
}

stage "encoder unit tests (plain, ASan+UBSan)" make -s -C encoders test
stage "encoder fuzzers (${FUZZ_SECONDS}s each)" make -s -C encoders fuzz-run FUZZ_SECONDS="$FUZZ_SECONDS"
stage "encoder CLI builds" make -s -C encoders cli
stage "distance kernel unit tests (plain, ASan+UBSan)" make -s -C test/kernels

build_extension() {
	make -s clean >/dev/null
	make -s -j"$(nproc)" WERROR=1 && make -s install
}
stage "extension build (-Werror) and install" build_extension

# pg_regress and TAP write into the tree they run from; run them as the
# postgres user in a copy that user owns.
WORK=$(mktemp -d /tmp/crossmodal-tests.XXXXXX)
cp -r Makefile crossmodal.control extension sql test "$WORK"/
mkdir -p "$WORK/encoders" "$WORK/tools"
cp tools/private-pg.sh "$WORK/tools/"
# TAP test 070 builds 0.1.0 from the repository's history: a clone of it that
# the postgres user can read (the test fails and says so without one).
git clone -q --no-checkout "$ROOT" "$WORK/repository" || echo "no git history in $ROOT"
chown -R postgres: "$WORK"

# (TAP_TESTS= below: installcheck would also run the TAP tests, which have
# their own stage.)
cluster_start 54339 "shared_buffers = 256MB" "max_parallel_workers_per_gather = 2"
regress() {
	if ! as_postgres make -s -C "$WORK" installcheck TAP_TESTS= PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres; then
		cat "$WORK/regression.diffs" 2>/dev/null | head -200
		return 1
	fi
}
stage "pg_regress" regress
cluster_stop

if ls test/t/*.pl >/dev/null 2>&1; then
	stage "TAP tests" as_postgres env CROSSMODAL_SOURCE_DIR="$WORK/repository" make -s -C "$WORK" prove_installcheck
fi
rm -rf "$WORK"

echo
echo "test stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
