#!/usr/bin/env bash
# Runs every test of the project: the encoder runtime's unit tests (plain and
# under ASan+UBSan), a short run of each fuzzer, the distance-kernel tests, the
# extension's pg_regress suite and TAP tests against throwaway clusters, the
# client examples and the gallery's test in headless chromium, and the build,
# check and install of the Debian package.
# Usage (as root on Debian 12; installs what it needs):
#   test/run.sh                  every test
#   test/run.sh KIND [NAME]      one kind of test, or one test of that kind:
#     unit [test_tokenizer]      encoder unit tests (test/encoders/NAME.c)
#     fuzz [fuzz_image]          fuzzers (test/fuzz/NAME.c), FUZZ_SECONDS each
#     kernels                    distance-kernel tests
#     exports                    the built library exports only what PostgreSQL looks up
#     regress [hnsw_index]       pg_regress (test/sql/NAME.sql)
#     tap [061_hnsw_crash]       TAP (test/t/NAME.pl)
#     shm                        a parallel index build beside a 32 MB /dev/shm
#                                (a private mount namespace: needs root)
#     examples [python|node|gallery]   client examples, browser test
#     package                    Debian package
#     citus                      Citus (test/citus/t/*.pl): only where Citus 13.2
#                                is installed in this PostgreSQL; not part of "all"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
kind=${1:-all}
one=${2:-}
case $kind in
all | unit | fuzz | kernels | exports | regress | tap | shm | examples | package | citus) ;;
*) sed -n '/^# Usage/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
want() { [ "$kind" = all ] || [ "$kind" = "$1" ]; }

tools/install-deps.sh --test
. tools/cluster.sh

passed=0; failed=0
stage() {	# stage NAME COMMAND...: run one stage, count it, time it
	local name=$1 start=$SECONDS; shift
	echo "=== $name"
	if "$@"; then passed=$((passed + 1)); echo "--- $name: ok ($((SECONDS - start)) s)"
	else failed=$((failed + 1)); echo "--- $name: FAILED ($((SECONDS - start)) s)"; fi
}

if want unit; then
	stage "encoder unit tests (plain, ASan+UBSan)" make -s -C encoders test \
		${one:+TESTS=$ROOT/build/tests/$one ASAN_TESTS=$ROOT/build/asan-tests/$one}
fi
if want fuzz; then
	stage "encoder fuzzers (${FUZZ_SECONDS}s each)" make -s -C encoders fuzz-run FUZZ_SECONDS="$FUZZ_SECONDS" \
		${one:+FUZZERS=$ROOT/build/fuzz/$one}
fi
if [ "$kind" = all ]; then
	stage "encoder CLI builds" make -s -C encoders cli
fi
if want kernels; then
	stage "distance kernel unit tests (plain, ASan+UBSan)" make -s -C test/kernels
fi

build_extension() {
	make -s clean >/dev/null
	make -s -j"$(nproc)" WERROR=1 && make -s install
}
if want exports || want regress || want tap || want shm || want examples || want package || [ "$kind" = citus ]; then
	stage "extension build (-Werror) and install" build_extension
fi
if want exports; then
	version=$(sed -n "s/^default_version = '\(.*\)'/\1/p" crossmodal.control)
	stage "exported symbols: only the allow-list" \
		test/check_exports.sh crossmodal.so "sql/crossmodal--$version.sql" sql/crossmodal--*--*.sql
fi

if want regress || want tap || [ "$kind" = citus ]; then
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

	if want regress; then
		# (TAP_TESTS= below: installcheck would also run the TAP tests, which have
		# their own stage.)
		cluster_start 54339 "shared_buffers = 256MB" "max_parallel_workers_per_gather = 2"
		regress() {
			if ! as_postgres make -s -C "$WORK" installcheck TAP_TESTS= PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres \
				${one:+REGRESS=$one}; then
				cat "$WORK/regression.diffs" 2>/dev/null | head -200
				return 1
			fi
		}
		stage "pg_regress" regress
		cluster_stop
	fi

	if want tap && ls test/t/*.pl >/dev/null 2>&1; then
		stage "TAP tests" as_postgres env CROSSMODAL_SOURCE_DIR="$WORK/repository" make -s -C "$WORK" prove_installcheck \
			${one:+PROVE_TESTS=test/t/${one%.pl}.pl}
	fi
	# Citus is not in Debian: the user installs it (README, Scaling out).
	if [ "$kind" = citus ]; then
		citus_tests=test/citus/t/${one:-*}
		stage "Citus: coordinator and 2 workers" as_postgres make -s -C "$WORK" prove_installcheck \
			PROVE_TESTS="${citus_tests%.pl}.pl"
	fi
	rm -rf "$WORK"
fi

if want shm; then
	stage "parallel index build beside a 32 MB /dev/shm" \
		unshare --mount --propagation private test/shm_build.sh
fi

if want examples; then
	if [ "$one" != gallery ]; then
		stage "client examples (Python psycopg 3, Node.js pg)" examples/run.sh ${one:-python node}
	fi
	if [ -z "$one" ] || [ "$one" = gallery ]; then
		stage "gallery web app in headless chromium" examples/run.sh gallery
	fi
fi

# Last: where the PostgreSQL under test is Debian's, this installs the package
# for real, removes it, and installs the extension again.
if want package; then
	stage "Debian package (dpkg-buildpackage, contents, install)" test/debian_package.sh
fi

echo
echo "test stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
