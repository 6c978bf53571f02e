#!/usr/bin/env bash
# Long fuzzing: runs each libFuzzer target (build/fuzz/fuzz_*) one after the
# other, until it has made FUZZ_LONG_RUNS executions or run FUZZ_LONG_SECONDS,
# whichever comes first, under nice, on a corpus kept between runs, and prints
# a table of executions, coverage and findings.
#
# Usage (from anywhere; `make fuzz-long` builds the targets and runs this):
#   test/fuzz/run-long.sh [TARGET...]            every target, or the ones named
#   test/fuzz/run-long.sh --minimize [TARGET...] merge each kept corpus into a
#                                                 minimal one (coverage-preserving)
# Environment:
#   FUZZ_LONG_RUNS     executions per target (default 10000000)
#   FUZZ_LONG_SECONDS  time limit per target (default 3600)
#   FUZZ_LONG_DIR      kept corpora, logs, crash artifacts (default build/fuzz/long)
#   FUZZ_NICE          nice level (default 15: the machine stays usable)
#
# Layout of FUZZ_LONG_DIR: corpus/NAME (the kept corpus, seeded from
# test/fuzz/corpus/NAME and the image fixtures), artifacts/NAME-* (inputs
# that crashed, leaked or timed out), logs/NAME.log, min/NAME (--minimize),
# summary.txt (one table per run, appended).  A finding stops that target's
# run; reproduce it with `build/fuzz/NAME FILE`, fix it, and add FILE to
# test/fuzz/corpus/NAME as a regression seed (fuzz-run replays it in CI).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
RUNS=${FUZZ_LONG_RUNS:-10000000}
SECS=${FUZZ_LONG_SECONDS:-3600}
DIR=${FUZZ_LONG_DIR:-$ROOT/build/fuzz/long}
NICE=${FUZZ_NICE:-15}
minimize=false
if [ "${1:-}" = --minimize ]; then minimize=true; shift; fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in build/fuzz/fuzz_*; do [ -x "$f" ] && targets+=("$(basename "$f")"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in build/fuzz (make -C encoders fuzz)" >&2; exit 2; }
mkdir -p "$DIR/corpus" "$DIR/artifacts" "$DIR/logs" "$DIR/min"

# seed_dirs NAME: the directories a target's corpus starts from
seed_dirs() {
	local n=$1
	[ -d "test/fuzz/corpus/$n" ] && echo "test/fuzz/corpus/$n"
	case $n in
	fuzz_image_*)
		local fmt=${n#fuzz_image_} s
		rm -rf "$DIR/seed/$n"; mkdir -p "$DIR/seed/$n"
		for s in test/images/"${fmt}"_*; do
			case $s in *.ppm) ;; *) [ -f "$s" ] && cp "$s" "$DIR/seed/$n/" ;; esac
		done
		echo "$DIR/seed/$n" ;;
	fuzz_image)
		rm -rf "$DIR/seed/$n"; mkdir -p "$DIR/seed/$n"
		for s in test/images/* test/golden*/images/*; do
			case $s in *.ppm) ;; *) [ -f "$s" ] && [ "$(stat -c %s "$s")" -le 200000 ] && cp "$s" "$DIR/seed/$n/" ;; esac
		done
		echo "$DIR/seed/$n" ;;
	esac
}

if $minimize; then
	for n in "${targets[@]}"; do
		rm -rf "$DIR/min/$n"; mkdir -p "$DIR/min/$n"
		nice -n "$NICE" "build/fuzz/$n" -merge=1 -rss_limit_mb=4096 "$DIR/min/$n" "$DIR/corpus/$n" \
			>"$DIR/logs/$n.merge.log" 2>&1
		echo "$n: $(ls "$DIR/min/$n" | wc -l) files, $(du -sh "$DIR/min/$n" | cut -f1) (from $(ls "$DIR/corpus/$n" | wc -l))"
	done
	exit 0
fi

summary=$DIR/summary.txt
{
	echo
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC') runs<=$RUNS seconds<=$SECS nice=$NICE, load: $(uptime | sed 's/.*load average: //')"
	printf '%-24s %12s %8s %8s %8s %8s %s\n' target executions seconds exec/s cov ft findings
} | tee -a "$summary"
status=0
for n in "${targets[@]}"; do
	bin=build/fuzz/$n
	[ -x "$bin" ] || { echo "$n: not built" >&2; status=1; continue; }
	mkdir -p "$DIR/corpus/$n"
	dict=; [ -f "test/fuzz/$n.dict" ] && dict=-dict=test/fuzz/$n.dict
	start=$SECONDS
	# shellcheck disable=SC2046
	nice -n "$NICE" "$bin" -runs="$RUNS" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=30 \
		-print_final_stats=1 -artifact_prefix="$DIR/artifacts/$n-" $dict \
		"$DIR/corpus/$n" $(seed_dirs "$n") >"$DIR/logs/$n.log" 2>&1
	rc=$?
	secs=$((SECONDS - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$DIR/logs/$n.log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$DIR/logs/$n.log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	[ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
	finding=none
	if [ $rc -ne 0 ]; then
		finding="exit $rc: $(grep -m1 -E 'ERROR: |invariant broken|Test unit written' "$DIR/logs/$n.log" | cut -c1-120)"
		status=1
	fi
	printf '%-24s %12s %8s %8s %8s %8s %s\n' "$n" "${execs:-?}" "$secs" \
		"$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "${cov:-?}" "${ft:-?}" "$finding" | tee -a "$summary"
done
echo "kept corpora: $DIR/corpus; logs: $DIR/logs; summary: $summary"
exit $status
